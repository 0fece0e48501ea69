package winsim_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/test/winsim"
)

// A host is ready to use as soon as Start returns: authorise a key,
// register the programs the test needs, and connect.
func Example() {
	ctx := context.Background()
	h, err := winsim.Start(ctx, winsim.Options{Hostname: "WIN-DEMO", OSBuild: winsim.BuildServer2019})
	if err != nil {
		panic(err)
	}
	defer h.Close()

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	h.AuthorizeKey("Administrator", signer.PublicKey())
	_ = h.RegisterProgram(`C:\Windows\System32\hostname.exe`, winsim.ProgramFunc(
		func(ctx context.Context, inv *winsim.Invocation) int {
			f := inv.Host.Facts()
			fmt.Fprintf(inv.Stdout, "%s %d\r\n", f.Hostname, f.OSBuild)
			return 0
		}))

	hostKey, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(h.HostKey()))
	client, err := ssh.Dial("tcp", h.Address(), &ssh.ClientConfig{
		User:            "Administrator",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	sess, _ := client.NewSession()
	out, err := sess.Output("hostname")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", out)
	// Output: "WIN-DEMO 17763\r\n"
}
