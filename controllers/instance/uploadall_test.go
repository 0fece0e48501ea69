package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// uploadAll lets at most payloadUploads files send their bytes at once (a
// file sends from its creation on the host until its hash is asked for;
// the others are hashed meanwhile), and every file arrives whole.
func TestUploadAllBoundsFilesSendingAtOnce(t *testing.T) {
	g := NewWithT(t)
	h, target := cacheHost(t)
	_, err := simagent.Install(h, simagent.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Disk().WriteFile(wicdapi.AgentPath, simagent.AgentImage("v1"))).To(Succeed())
	dir := t.TempDir()
	m := &payload.Manifest{Version: "v1"}
	contents := map[string][]byte{}
	for i := range 4 * payloadUploads {
		rel := fmt.Sprintf("f%02d.exe", i)
		data := []byte(strings.Repeat(rel, 32<<10))
		g.Expect(os.WriteFile(filepath.Join(dir, rel), data, 0o600)).To(Succeed())
		sum := sha256.Sum256(data)
		m.Files = append(m.Files, payload.File{Path: rel, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
		contents[rel] = data
	}

	var (
		mu               sync.Mutex
		sending, hashing []string
		peak             int
	)
	defer h.Observe(winsim.Observer{FileCreated: func(p string) {
		mu.Lock()
		defer mu.Unlock()
		sending = append(sending, strings.ToLower(strings.ReplaceAll(p, "/", `\`)))
		peak = max(peak, len(sending))
	}})()
	// A file stops sending when its hash is asked for (before AgentHash
	// frees its turn on the link, and so before the next file's creation).
	hash := func(ctx context.Context, sess remote.Session, p string) (string, error) {
		mu.Lock()
		hashing = append(hashing, p)
		sending = slices.DeleteFunc(sending, func(s string) bool { return s == strings.ToLower(p) })
		mu.Unlock()
		return AgentHash(ctx, sess, p)
	}
	sess, err := (&remote.SSHDialer{Hash: hash}).Dial(t.Context(), target)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = sess.Close() })

	s := &scope{session: sess, target: payload.Entry{Dir: dir, Manifest: m}}
	g.Expect((&Reconciler{}).uploadAll(t.Context(), s, m.Files)).To(Succeed())
	for rel, data := range contents {
		g.Expect(h.Disk().ReadFile(payload.HostPath("v1", rel))).To(Equal(data), rel)
	}
	mu.Lock()
	defer mu.Unlock()
	g.Expect(hashing).To(HaveLen(len(m.Files)), "every file is hashed on the host")
	g.Expect(peak).To(BeNumerically("<=", payloadUploads), "files sending bytes at once")
}
