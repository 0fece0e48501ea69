package instance

import (
	"context"
	"encoding/json"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// AgentHash is the remote.HashFunc the operator verifies uploads with: the
// agent on the host hashes the file (no second transfer); before the agent
// is there, the file is read back over SFTP.
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
	return remote.ReadBackHash(ctx, s, path)
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
