package instance

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// AgentHash is the remote.HashFunc the operator verifies uploads with: the
// agent on the host hashes the file (no second transfer). Before the agent
// is there, Windows' own certutil hashes it, and where that fails too the
// file is read back over SFTP.
func AgentHash(ctx context.Context, s remote.Session, path string) (string, error) {
	if sent, ok := ctx.Value(bytesSentKey{}).(func()); ok {
		sent()
	}
	res, err := s.Run(ctx, []string{wicdapi.AgentPath, "hash", path})
	if err == nil && res.ExitCode == 0 {
		var h wicdapi.HashResult
		if json.Unmarshal(res.Stdout, &h) == nil && h.SHA256 != "" {
			return h.SHA256, nil
		}
	}
	res, err = s.Run(ctx, []string{certutil, "-hashfile", path, "SHA256"})
	if err == nil && res.ExitCode == 0 {
		if sum, ok := parseCertutilSHA256(res.Stdout); ok {
			return sum, nil
		}
	}
	return remote.ReadBackHash(ctx, s, path)
}

// certutil is Windows' certificate utility, in System32 on every Windows
// Server; its -hashfile verb hashes a file.
const certutil = "certutil.exe"

// parseCertutilSHA256 reads the hash `certutil -hashfile PATH SHA256`
// prints: a line naming the file, the hash in hex (with a space between
// bytes on older Windows), and a line saying the command completed. ok is
// false for any other output.
func parseCertutilSHA256(out []byte) (string, bool) {
	lines := strings.Split(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n")
	for i := 0; i+2 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "SHA256 hash of ") || !strings.HasPrefix(lines[i+2], "CertUtil: -hashfile command completed successfully") {
			continue
		}
		sum := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(lines[i+1]), " ", ""))
		if b, err := hex.DecodeString(sum); err == nil && len(b) == 32 {
			return sum, true
		}
		return "", false
	}
	return "", false
}

// bytesSentKey is the context key of a function AgentHash calls as it
// begins: remote's Upload verifies a file once all of its bytes are on
// the host, so from then on the upload no longer uses the link.
type bytesSentKey struct{}

// withBytesSent returns ctx carrying sent, which AgentHash calls when the
// upload made under ctx has sent its last byte.
func withBytesSent(ctx context.Context, sent func()) context.Context {
	return context.WithValue(ctx, bytesSentKey{}, sent)
}
