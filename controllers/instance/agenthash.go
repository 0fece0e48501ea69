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
	res, err := s.Run(ctx, []string{wicdapi.AgentPath, "hash", path})
	if err == nil && res.ExitCode == 0 {
		var h wicdapi.HashResult
		if json.Unmarshal(res.Stdout, &h) == nil && h.SHA256 != "" {
			return h.SHA256, nil
		}
	}
	return remote.ReadBackHash(ctx, s, path)
}
