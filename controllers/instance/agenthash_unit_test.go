package instance

import (
	"regexp"
	"testing"
)

const certutilSum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestParseCertutilSHA256(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      string
		ok        bool
	}{
		{name: "Windows Server 2019 and later", ok: true, want: certutilSum,
			out: "SHA256 hash of C:\\k\\wicd.exe.wmco-upload:\r\n" + certutilSum + "\r\nCertUtil: -hashfile command completed successfully.\r\n"},
		{name: "older Windows: a space between bytes, upper case", ok: true, want: certutilSum,
			out: "SHA256 hash of file C:\\k\\wicd.exe.wmco-upload:\r\n9F 86 D0 81 88 4C 7D 65 9A 2F EA A0 C5 5A D0 15 A3 BF 4F 1B 2B 0B 82 2C D1 5D 6C 15 B0 F0 0A 08\r\nCertUtil: -hashfile command completed successfully.\r\n"},
		{name: "LF line ends", ok: true, want: certutilSum,
			out: "SHA256 hash of C:\\k\\x:\n" + certutilSum + "\nCertUtil: -hashfile command completed successfully.\n"},
		{name: "failed", out: "CertUtil: -hashfile command FAILED: 0x80070002 (WIN32: 2 ERROR_FILE_NOT_FOUND)\r\nCertUtil: The system cannot find the file specified.\r\n"},
		{name: "another algorithm", out: "SHA1 hash of C:\\k\\x:\r\n" + certutilSum[:40] + "\r\nCertUtil: -hashfile command completed successfully.\r\n"},
		{name: "short hash", out: "SHA256 hash of C:\\k\\x:\r\n" + certutilSum[:62] + "\r\nCertUtil: -hashfile command completed successfully.\r\n"},
		{name: "not hex", out: "SHA256 hash of C:\\k\\x:\r\n" + certutilSum[:63] + "g\r\nCertUtil: -hashfile command completed successfully.\r\n"},
		{name: "no completion line", out: "SHA256 hash of C:\\k\\x:\r\n" + certutilSum + "\r\n"},
		{name: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseCertutilSHA256([]byte(tc.out))
			if got != tc.want || ok != tc.ok {
				t.Fatalf("parseCertutilSHA256 = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

var lowerSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func FuzzParseCertutilSHA256(f *testing.F) {
	f.Add([]byte("SHA256 hash of C:\\k\\x:\r\n" + certutilSum + "\r\nCertUtil: -hashfile command completed successfully.\r\n"))
	f.Add([]byte("CertUtil: -hashfile command FAILED: 0x80070002\r\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		if sum, ok := parseCertutilSHA256(out); ok != lowerSHA256.MatchString(sum) {
			t.Fatalf("parseCertutilSHA256(%q) = %q, %v", out, sum, ok)
		}
	})
}
