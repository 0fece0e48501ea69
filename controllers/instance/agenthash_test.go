package instance

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Before the agent is on the host, an upload is hashed by Windows'
// certutil rather than read back over SFTP; a host where certutil does not
// answer has the file read back.
func TestAgentHashBeforeTheAgentIsThere(t *testing.T) {
	for _, tc := range []struct {
		name         string
		noCertutil   bool
		wantReadBack bool
	}{
		{name: "certutil hashes it"},
		{name: "no certutil: read back", noCertutil: true, wantReadBack: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			h, target := cacheHost(t)
			_, err := simagent.Install(h, simagent.Options{})
			g.Expect(err).NotTo(HaveOccurred())
			if tc.noCertutil {
				h.UnregisterProgram(`C:\Windows\System32\certutil.exe`)
			}
			const path = `C:\k\wicd.exe.wmco-upload`
			data := []byte(strings.Repeat("not an agent yet ", 4096))
			g.Expect(h.Disk().WriteFile(path, data)).To(Succeed())
			sess := cacheDial(t, target)

			var log winsim.RequestLog
			defer log.Record(h)()
			sum, err := AgentHash(t.Context(), sess, path)
			g.Expect(err).NotTo(HaveOccurred())
			want := sha256.Sum256(data)
			g.Expect(sum).To(Equal(hex.EncodeToString(want[:])))

			requests := log.Requests()
			g.Expect(requests).To(ContainElement(`exec C:\k\wicd.exe hash ` + path))
			if tc.wantReadBack {
				g.Expect(requests).To(ContainElement(HavePrefix("sftp")))
			} else {
				g.Expect(requests).To(ContainElement(`exec certutil.exe -hashfile ` + path + ` SHA256`))
				g.Expect(requests).NotTo(ContainElement(HavePrefix("sftp")), "nothing read back")
			}
		})
	}
}
