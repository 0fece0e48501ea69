package simagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/openwmco/wmco/test/winsim"
)

// certutilPath is where Windows keeps certutil.exe.
const certutilPath = `C:\Windows\System32\certutil.exe`

// HRESULTs certutil fails with, as exit codes.
const (
	hresultFileNotFound = 0x80070002
	hresultBadAlgID     = 0x80090008
	hresultInvalidArgs  = 0x80070057
)

// certutil simulates `certutil -hashfile PATH [ALGORITHM]`, the only verb
// the operator uses (it verifies the first agent upload with it): the
// file's hash in Windows' output format. Only SHA256 is simulated: any
// other algorithm, SHA1 too (certutil's default), fails as an unknown one
// would.
func (n *Node) certutil(_ context.Context, inv *winsim.Invocation) int {
	args := inv.Args[1:]
	if len(args) < 2 || len(args) > 3 || !strings.EqualFold(args[0], "-hashfile") {
		fmt.Fprintf(inv.Stdout, "CertUtil: -%s command FAILED: 0x%08x (WIN32: 87 ERROR_INVALID_PARAMETER)\r\nCertUtil: The parameter is incorrect.\r\n", strings.TrimLeft(first(args), "-/"), hresultInvalidArgs)
		return hresultInvalidArgs
	}
	path, alg := args[1], "SHA1"
	if len(args) == 3 {
		alg = strings.ToUpper(args[2])
	}
	if alg != "SHA256" {
		fmt.Fprintf(inv.Stdout, "CertUtil: -hashfile command FAILED: 0x%08x (-2146893816 NTE_BAD_ALGID)\r\nCertUtil: Invalid algorithm specified.\r\n", hresultBadAlgID)
		return hresultBadAlgID
	}
	f, err := n.Host.Disk().Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(inv.Stdout, "CertUtil: -hashfile command FAILED: 0x%08x (WIN32: 2 ERROR_FILE_NOT_FOUND)\r\nCertUtil: The system cannot find the file specified.\r\n", hresultFileNotFound)
			return hresultFileNotFound
		}
		fmt.Fprintf(inv.Stdout, "CertUtil: -hashfile command FAILED: %v\r\n", err)
		return 1
	}
	defer f.Close() //nolint:errcheck // read-only: Close cannot lose data
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		fmt.Fprintf(inv.Stdout, "CertUtil: -hashfile command FAILED: %v\r\n", err)
		return 1
	}
	fmt.Fprintf(inv.Stdout, "SHA256 hash of %s:\r\n%s\r\nCertUtil: -hashfile command completed successfully.\r\n", path, hex.EncodeToString(h.Sum(nil)))
	return 0
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
