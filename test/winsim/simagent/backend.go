package simagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
)

// diskFiles adapts the host's virtual disk to wicd.Files and
// kubeletemu.Disk.
type diskFiles struct{ d *winsim.Disk }

func (f diskFiles) Open(p string) (io.ReadCloser, error) { return f.d.Open(p) }

// readHead reads at most limit bytes from the start of the file at path.
func readHead(d *winsim.Disk, path string, limit int64) ([]byte, error) {
	r, err := d.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	return io.ReadAll(io.LimitReader(r, limit))
}

// fileSum is the hex SHA-256 of the file at path, read without copying
// the whole file.
func fileSum(d *winsim.Disk, path string) (string, error) {
	r, err := d.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = r.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (f diskFiles) ReadFile(p string) ([]byte, error) { return f.d.ReadFile(p) }

// WriteFile writes aside and renames into place, as the Windows backend
// does, so a full disk never leaves a truncated file.
func (f diskFiles) WriteFile(p string, data []byte) error {
	return f.replace(p, func(tmp string) error { return f.d.WriteFile(tmp, data) })
}

// CopyFile copies aside and renames, as WriteFile writes.
func (f diskFiles) CopyFile(from, to string) (n int64, err error) {
	err = f.replace(to, func(tmp string) (err error) {
		n, err = f.d.CopyFile(from, tmp)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// CopyAndEmpty is one step on the disk, which checks the holds on from
// before it copies.
func (f diskFiles) CopyAndEmpty(from, to string) (int64, error) {
	n, err := f.d.CopyAndEmpty(from, to)
	return n, mapDiskErr(err)
}

// replace has write fill a temporary file beside p and renames it over p;
// a failure removes the temporary file.
func (f diskFiles) replace(p string, write func(tmp string) error) error {
	tmp := p + ".wicd-tmp"
	err := write(tmp)
	if err == nil {
		err = f.d.Rename(tmp, p, true)
	}
	if err != nil {
		_ = f.d.Remove(tmp)
		return mapDiskErr(err)
	}
	return nil
}

// mapDiskErr adds the agent's sentinels to the disk's errors, as the
// Windows backend does to Windows' error codes.
func mapDiskErr(err error) error {
	var inUse *winsim.InUseError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, winsim.ErrDiskFull):
		return fmt.Errorf("%w: %w", wicd.ErrDiskFull, err)
	case errors.As(err, &inUse):
		return fmt.Errorf("%w: %w", wicd.ErrFileInUse, err)
	}
	return err
}

func (f diskFiles) MkdirAll(p string) error            { return f.d.MkdirAll(p) }
func (f diskFiles) Stat(p string) (fs.FileInfo, error) { return f.d.Stat(p) }
func (f diskFiles) Remove(p string) error              { return mapDiskErr(f.d.Remove(p)) }
func (f diskFiles) Rename(from, to string) error       { return mapDiskErr(f.d.Rename(from, to, true)) }

// Holders answers as the Restart Manager would.
func (f diskFiles) Holders(p string) ([]string, error) { return f.d.Holders(p), nil }
func (f diskFiles) FreeBytes(string) (int64, error)    { return f.d.Free(), nil }

func (f diskFiles) ReadDir(p string) ([]fs.DirEntry, error) {
	infos, err := f.d.List(p)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(infos))
	for i, fi := range infos {
		out[i] = fs.FileInfoToDirEntry(fi)
	}
	return out, nil
}

func (f diskFiles) RemoveAll(p string) error {
	fi, err := f.d.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		entries, err := f.d.List(p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := f.RemoveAll(p + `\` + e.Name()); err != nil {
				return err
			}
		}
	}
	return mapDiskErr(f.d.Remove(p))
}

func (f diskFiles) Walk(root string, fn func(string, fs.FileInfo) error) error {
	fi, err := f.d.Stat(root)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fn(root, fi)
	}
	entries, err := f.d.List(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := f.Walk(strings.TrimSuffix(root, `\`)+`\`+e.Name(), fn); err != nil {
			return err
		}
	}
	return nil
}

// system answers from the host's facts and keeps feature state.
type system struct {
	host *winsim.Host
	// clockSkew is added to the real clock (nanoseconds; SetClockSkew).
	clockSkew atomic.Int64

	mu       sync.Mutex
	features map[string]bool
	// pending features are enabled at the next boot.
	pending map[string]bool
	// reboot is the reboot `shutdown /r` scheduled, nil when none.
	reboot *time.Timer
}

func (s *system) Hostname() (string, error) { return s.host.Facts().Hostname, nil }
func (s *system) OSBuild() (int, error)     { return s.host.Facts().OSBuild, nil }
func (s *system) Now() time.Time            { return time.Now().Add(time.Duration(s.clockSkew.Load())) }

// BootTime is when the host last came up. A clock skew set later
// (SetClockSkew: a drift) leaves it as it is, as Windows keeps the boot
// time it recorded.
func (s *system) BootTime() (time.Time, error) { return s.host.Facts().BootTime, nil }

func (s *system) Addresses() ([]string, error) {
	addrs := slices.Clone(s.host.Facts().IPAddresses)
	sort.SliceStable(addrs, func(i, j int) bool { return addrs[i].Is4() && !addrs[j].Is4() })
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out, nil
}

func (s *system) Features(names []string) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = s.features[n]
	}
	return out, nil
}

func (s *system) EnableFeature(name string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.features[name] {
		return false, nil
	}
	s.pending[name] = true
	return true, nil
}

// PendingHostname is the name the host takes at its next boot.
func (s *system) PendingHostname() (string, error) { return s.host.PendingHostname(), nil }

// SetHostname sets the computer name for the next boot; as the account
// of the agent's service (LocalSystem) it may.
func (s *system) SetHostname(name string) error { return s.host.SetHostname(name) }

// userSystem is the system as seen by a program an SSH user runs: only an
// administrator may rename the computer, as SetComputerNameEx requires.
type userSystem struct {
	*system
	host *winsim.Host
	user string
}

func (s userSystem) SetHostname(name string) error {
	if !strings.EqualFold(s.user, "SYSTEM") && !s.host.IsAdmin(s.user) {
		return fmt.Errorf("set the computer name: %w", winsim.ErrAccessDenied)
	}
	return s.system.SetHostname(name)
}

// Boot implements winsim.Component: features enabled before the reboot
// are on now.
func (s *system) Boot(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.pending {
		s.features[n] = true
	}
	clear(s.pending)
	return nil
}

// Shutdown implements winsim.Component: a reboot that was scheduled is
// gone with the boot that scheduled it.
func (s *system) Shutdown(context.Context) error {
	s.abortReboot()
	return nil
}

// scheduleReboot reboots the host after delay, down for downFor; false
// when a reboot is scheduled already.
func (s *system) scheduleReboot(delay, downFor time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reboot != nil {
		return false
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		s.mu.Lock()
		mine := s.reboot == t
		if mine {
			s.reboot = nil
		}
		s.mu.Unlock()
		if mine {
			_ = s.host.Reboot(context.Background(), downFor)
		}
	})
	s.reboot = t
	return true
}

// abortReboot cancels the scheduled reboot; false when none was.
func (s *system) abortReboot() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reboot == nil {
		return false
	}
	s.reboot.Stop()
	s.reboot = nil
	return true
}

// hns is the host's set of HNS networks. They do not survive a reboot
// unless re-created (hybrid-overlay re-creates its network when it starts).
type hns struct {
	host *winsim.Host
	// resets: deleting a network resets the host's connections.
	resets bool

	mu       sync.Mutex
	networks map[string]bool
	// deleteErr fails every deletion (FailNetworkDelete).
	deleteErr error
}

func (n *hns) ListNetworks() ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name := range n.networks {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

func (n *hns) DeleteNetwork(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	// The reset happens with n.mu held; ResetConnections takes no lock
	// of ours.
	if !n.networks[name] {
		return fmt.Errorf("HNS network %s: %w", name, fs.ErrNotExist)
	}
	if n.deleteErr != nil {
		return fmt.Errorf("HNS network %s: %w", name, n.deleteErr)
	}
	delete(n.networks, name)
	if n.resets {
		n.host.ResetConnections()
	}
	return nil
}

func (n *hns) create(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.networks[name] = true
}

func (n *hns) Boot(context.Context) error { return nil }

func (n *hns) Shutdown(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.networks)
	return nil
}

// hostLock is one agent at a time on the host, like a named mutex.
type hostLock struct{ ch chan struct{} }

func (l hostLock) Lock(ctx context.Context) (func(), error) {
	select {
	case l.ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-l.ch }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// hostExec runs the host's programs, as CreateProcess would.
type hostExec struct{ h *winsim.Host }

func (e hostExec) Run(ctx context.Context, argv []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	code, err := e.h.Exec(ctx, "SYSTEM", argv, &stdout, &stderr)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return stdout.Bytes(), fmt.Errorf("%s exited with status %d: %s", argv[0], code, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// firewall is the host's Windows Firewall: inbound rules by name, each
// enabled or disabled.
type firewall struct {
	mu    sync.Mutex
	rules map[string]wicd.FirewallRuleState
}

func (f *firewall) Rule(_ context.Context, name string) (wicd.FirewallRuleState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rules[name]
	if !ok {
		return wicd.FirewallRuleState{}, fmt.Errorf("firewall rule %s: %w", name, wicd.ErrNotFound)
	}
	return r, nil
}

// Add adds an enabled rule, as `netsh advfirewall firewall add rule ...
// enable=yes` does.
func (f *firewall) Add(_ context.Context, r wicdapi.FirewallRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[r.Name] = wicd.FirewallRuleState{FirewallRule: r, Enabled: true}
	return nil
}

// enable enables or disables a rule, as `netsh advfirewall firewall set
// rule name=... new enable=no` does.
func (f *firewall) enable(name string, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rules[name]
	if !ok {
		return fmt.Errorf("firewall rule %s: %w", name, wicd.ErrNotFound)
	}
	r.Enabled = on
	f.rules[name] = r
	return nil
}

func (f *firewall) Delete(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, name)
	return nil
}

// Rules lists the rules, enabled or not, by name.
func (f *firewall) Rules() []wicdapi.FirewallRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]wicdapi.FirewallRule, 0, len(f.rules))
	for _, r := range f.rules {
		out = append(out, r.FirewallRule)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// defender is Microsoft Defender, installed or not.
type defender struct {
	present bool

	mu         sync.Mutex
	exclusions []string
}

func (d *defender) Present(context.Context) (bool, error) { return d.present, nil }

func (d *defender) Exclusions(context.Context) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.exclusions), nil
}

func (d *defender) AddExclusion(_ context.Context, p string) error {
	if !d.present {
		return fmt.Errorf("add Defender exclusion %s: %w", p, wicd.ErrUnsupported)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.exclusions = append(d.exclusions, p)
	return nil
}

// accounts is the simulated user a program runs as: an SSH client's user,
// or SYSTEM for services. Membership of Administrators is the host's
// (winsim.Host.SetAdmin).
type accounts struct {
	host *winsim.Host
	user string
}

func (a accounts) Current() (wicd.Account, error) {
	profile := `C:\Users\` + a.user
	if strings.EqualFold(a.user, "SYSTEM") {
		profile = `C:\Windows\system32\config\systemprofile`
	}
	return wicd.Account{Name: a.user, Admin: a.host.IsAdmin(a.user), Profile: profile}, nil
}

// RestrictToAdministrators records the descriptor on the file, where the
// host's sshd checks it; only an administrator may set it.
func (a accounts) RestrictToAdministrators(p string) error {
	if !a.host.IsAdmin(a.user) {
		return fmt.Errorf("set security of %s: %w", p, winsim.ErrAccessDenied)
	}
	return a.host.Disk().SetSecurity(p, wicd.AdministratorsKeysSDDL)
}

// SecureFolder gives the folder wicd.AgentFolderSDDL unless its own
// descriptor is one wicd.FolderSecured accepts (one the folder inherits
// is not: "" on the simulated disk, inherited entries on Windows); only
// an administrator may set it. The disk then denies other users what
// Windows would (winsim's sftp).
func (a accounts) SecureFolder(p string) error {
	sd, err := a.host.Disk().Security(p)
	if err != nil {
		return err
	}
	if wicd.FolderSecured(sd) {
		return nil
	}
	if !a.host.IsAdmin(a.user) {
		return fmt.Errorf("set security of %s: %w", p, winsim.ErrAccessDenied)
	}
	return a.host.Disk().SetSecurity(p, wicd.AgentFolderSDDL)
}

// rootStore is the host's LocalMachine Root certificate store. It
// outlives reboots, as the registry-backed store does.
type rootStore struct {
	mu    sync.Mutex
	certs map[string][]byte // DER by thumbprint
}

func (s *rootStore) HasRoot(_ context.Context, thumbprint string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.certs[strings.ToUpper(thumbprint)]
	return ok, nil
}

// AddRoot refuses bytes that are not a certificate, as
// CertCreateCertificateContext does.
func (s *rootStore) AddRoot(_ context.Context, der []byte) error {
	if _, err := x509.ParseCertificate(der); err != nil {
		return fmt.Errorf("CertCreateCertificateContext: ASN1 bad tag value met")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs[wicdapi.Thumbprint(der)] = slices.Clone(der)
	return nil
}

func (s *rootStore) DeleteRoot(_ context.Context, thumbprint string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.certs, strings.ToUpper(thumbprint))
	return nil
}

// thumbprints lists the store's certificates, sorted.
func (s *rootStore) thumbprints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.certs))
	for t := range s.certs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// userRoots is the store as a program an SSH user runs sees it: only an
// administrator (or SYSTEM) may change LocalMachine stores.
type userRoots struct {
	*rootStore
	host *winsim.Host
	user string
}

func (u userRoots) mayWrite() error {
	if strings.EqualFold(u.user, "SYSTEM") || u.host.IsAdmin(u.user) {
		return nil
	}
	return fmt.Errorf("open the LocalMachine Root store for writing: %w", winsim.ErrAccessDenied)
}

func (u userRoots) AddRoot(ctx context.Context, der []byte) error {
	if err := u.mayWrite(); err != nil {
		return err
	}
	return u.rootStore.AddRoot(ctx, der)
}

func (u userRoots) DeleteRoot(ctx context.Context, thumbprint string) error {
	if err := u.mayWrite(); err != nil {
		return err
	}
	return u.rootStore.DeleteRoot(ctx, thumbprint)
}

var (
	_ wicd.Certificates = (*rootStore)(nil)
	_ wicd.Certificates = userRoots{}
	_ wicd.Accounts     = accounts{}
	_ wicd.Exec         = hostExec{}
	_ wicd.Firewall     = (*firewall)(nil)
	_ wicd.Defender     = (*defender)(nil)
	_ wicd.Files        = diskFiles{}
	_ wicd.System       = (*system)(nil)
	_ wicd.System       = userSystem{}
	_ wicd.Network      = (*hns)(nil)
	_ wicd.Locker       = hostLock{}
)
