package instance

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/remote"
)

// A host's join takes several reconciles (the payload and plan, then the
// Node's registration, its readiness, its labels): each used to dial the
// host again. The connection cache keeps the SSH connection of a
// reconcile that ended well for the next reconcile of the same instance,
// for a short while, so that a join costs one connection.
const (
	// connIdleTimeout is how long an unused connection is kept: longer
	// than the gaps between the reconciles of a join (the kubelet's TLS
	// bootstrap and first status report, seconds on a busy machine), and
	// short enough that a Ready host's idle connection costs at most a
	// keepalive or two (remote.DefaultKeepaliveInterval).
	connIdleTimeout = 20 * time.Second
	// connCacheSize bounds the connections kept; the least recently used
	// one is closed to make room.
	connCacheSize = 64
	// parkedIdleTimeout is how long the connection of a host waiting for
	// a configuration slot is kept (park): as long as a host may wait
	// behind others' joins; keepalives find a host that went away
	// meanwhile (remote.Alive at take).
	parkedIdleTimeout = 10 * time.Minute
)

// connKey identifies what a connection was opened with: a cached
// connection is reused only with the same address, port, user and
// private key (a change of the Secret's key, or of the address, dials
// anew).
type connKey string

func newConnKey(t remote.Target) connKey {
	sum := sha256.Sum256(t.PrivateKey)
	return connKey(t.Address + "\x00" + strconv.Itoa(t.Port) + "\x00" + t.Username + "\x00" + hex.EncodeToString(sum[:]))
}

// connCache holds at most one idle connection per instance. A reconcile
// takes its instance's connection out (so it is never used by two at
// once) and puts it back when it ends well; everything else closes it.
// A kept connection was authenticated with the pinned host key: a host
// key that changes later (a reinstalled host, an sshd restarted with a
// new key) is seen at the next connection, at most connIdleTimeout
// after the last reconcile. Kept connections count against
// maxParallelConfigurations: a reconcile that holds a slot and has to dial
// closes the least recently used ones (reconcileConnection), so no more of
// them are open than hosts may be configured at once. Parked connections
// (park) are the exception: a host not known to answer is dialled before
// it takes a slot, and when none is free its connection waits here for
// the slot, so that a host dials once per join; they are bounded by the
// cache's size alone.
// The zero value is not usable; a nil *connCache keeps nothing.
type connCache struct {
	idle time.Duration
	size int

	mu      sync.Mutex
	entries map[string]*connEntry // by instance name
}

type connEntry struct {
	key     connKey
	session remote.Session
	used    time.Time
	timer   *time.Timer
	// parked: the instance waits for a configuration slot (park).
	parked bool
}

func newConnCache(idle time.Duration, size int) *connCache {
	return &connCache{idle: idle, size: size, entries: map[string]*connEntry{}}
}

// take returns the instance's kept connection when it was opened with key,
// presented the pinned host key (when one is pinned) and is still alive;
// any other kept connection of the instance is closed.
func (c *connCache) take(instance string, key connKey, pinnedHostKey string) remote.Session {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	e := c.entries[instance]
	delete(c.entries, instance)
	c.mu.Unlock()
	if e == nil {
		return nil
	}
	e.timer.Stop()
	if e.key != key || (pinnedHostKey != "" && !sameHostKey(pinnedHostKey, e.session.HostKey())) || !remote.Alive(e.session) {
		_ = e.session.Close()
		return nil
	}
	return e.session
}

// put keeps the instance's connection for its next reconcile, closing
// the least recently used one when the cache is full.
func (c *connCache) put(instance string, key connKey, s remote.Session, now time.Time) {
	c.keep(instance, key, s, now, false)
}

// park keeps the connection of an instance that waits for a configuration
// slot until it gets one (at most parkedIdleTimeout); trim leaves it.
func (c *connCache) park(instance string, key connKey, s remote.Session, now time.Time) {
	c.keep(instance, key, s, now, true)
}

func (c *connCache) keep(instance string, key connKey, s remote.Session, now time.Time, parked bool) {
	if c == nil {
		_ = s.Close()
		return
	}
	e := &connEntry{key: key, session: s, used: now, parked: parked}
	idle := c.idle
	if parked {
		idle = max(idle, parkedIdleTimeout)
	}
	e.timer = time.AfterFunc(idle, func() { c.expire(instance, e) })
	var closing []remote.Session
	c.mu.Lock()
	if old := c.entries[instance]; old != nil && old != e {
		old.timer.Stop()
		closing = append(closing, old.session)
	}
	c.entries[instance] = e
	c.mu.Unlock()
	for _, s := range closing {
		_ = s.Close()
	}
	c.shrink(c.size, true)
}

// trim closes the least recently used kept connections, parked ones
// aside, until at most keep of them are left.
func (c *connCache) trim(keep int) {
	c.shrink(keep, false)
}

// shrink closes the least recently used connections until at most keep
// are left: of the connections that are not parked, or with parked of
// all, those that are not parked first.
func (c *connCache) shrink(keep int, parked bool) {
	if c == nil {
		return
	}
	var closing []remote.Session
	c.mu.Lock()
	for {
		var oldest string
		n := 0
		for name, x := range c.entries {
			if x.parked && !parked {
				continue
			}
			n++
			if o := c.entries[oldest]; oldest == "" || (o.parked && !x.parked) || (o.parked == x.parked && x.used.Before(o.used)) {
				oldest = name
			}
		}
		if n <= max(keep, 0) {
			break
		}
		x := c.entries[oldest]
		x.timer.Stop()
		delete(c.entries, oldest)
		closing = append(closing, x.session)
	}
	c.mu.Unlock()
	for _, s := range closing {
		_ = s.Close()
	}
}

// expire closes e if it is still the instance's kept connection.
func (c *connCache) expire(instance string, e *connEntry) {
	c.mu.Lock()
	cur := c.entries[instance]
	if cur == e {
		delete(c.entries, instance)
	}
	c.mu.Unlock()
	if cur == e {
		_ = e.session.Close()
	}
}

// drop closes the instance's kept connection, if any: the instance is
// gone, paused or being deleted.
func (c *connCache) drop(instance string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	e := c.entries[instance]
	delete(c.entries, instance)
	c.mu.Unlock()
	if e != nil {
		e.timer.Stop()
		_ = e.session.Close()
	}
}

// len is how many connections are kept.
func (c *connCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// sameHostKey compares two host keys in authorized_keys format, ignoring
// comments and spacing; keys that do not parse are compared as text.
func sameHostKey(a, b string) bool {
	ka, _, _, _, errA := ssh.ParseAuthorizedKey([]byte(a))
	kb, _, _, _, errB := ssh.ParseAuthorizedKey([]byte(b))
	if errA != nil || errB != nil {
		return a == b
	}
	return string(ka.Marshal()) == string(kb.Marshal())
}
