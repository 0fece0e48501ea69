package remote

import (
	"context"
	"net"
)

// SetDialContext makes d open its TCP connections with dial, so a test
// sees every connection attempted.
func SetDialContext(d *SSHDialer, dial func(ctx context.Context, network, address string) (net.Conn, error)) {
	d.dialContext = dial
}
