//go:build windows

// Command probe is a small Windows program the Wine tier (test/wine) runs
// to look at the host from inside: it is the binary of a test service
// (recording the argv and environment it was started with), and it asks
// the service manager, the registry and the file system what the agent
// left behind, through the same Windows APIs a real host has.
package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: probe <command> [args]"))
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "service": // service NAME OUTFILE args...: run as a service
		err = runService(args[0], args[1])
	case "child": // child OUTFILE args...: no service: record the start (with the PID), then run until killed
		err = runChild(args[0])
	case "pid-alive": // pid-alive PID: alive or gone
		err = pidAlive(args[0])
	case "kill": // kill PID: TerminateProcess
		err = kill(args[0])
	case "svc-state": // svc-state NAME: running, stopped or absent
		err = svcState(args[0])
	case "replace": // replace SRC DST: MoveFileEx with MOVEFILE_REPLACE_EXISTING
		err = windows.MoveFileEx(utf16(args[0]), utf16(args[1]), windows.MOVEFILE_REPLACE_EXISTING)
	case "delete": // delete PATH: DeleteFile
		err = windows.DeleteFile(utf16(args[0]))
	case "removeall-os": // removeall-os PATH: os.RemoveAll
		err = os.RemoveAll(args[0])
	case "reg-multi": // reg-multi KEY VALUE: a REG_MULTI_SZ value under HKLM, one string a line
		err = regMulti(args[0], args[1])
	case "reg-exists": // reg-exists KEY: whether a key under HKLM exists
		err = regExists(args[0])
	case "mutex-hold": // mutex-hold NAME SDDL READY RELEASE: hold a named mutex until RELEASE exists
		err = mutexHold(args[0], args[1], args[2], args[3])
	case "append-hold": // append-hold PATH BYTES READY RELEASE: as containerd its --log-file: append BYTES, hold, append "after" once RELEASE exists
		err = appendHold(args[0], args[1], args[2], args[3])
	case "file-sddl": // file-sddl PATH: the owner and DACL of a file in SDDL
		err = fileSDDL(args[0])
	case "reg-sddl": // reg-sddl KEY: the DACL of a key under HKLM in SDDL
		err = regSDDL(args[0])
	case "root-has": // root-has THUMBPRINT: present or absent in LocalMachine\Root
		err = rootHas(args[0])
	case "root-del": // root-del THUMBPRINT: delete from LocalMachine\Root by enumeration
		err = rootDel(args[0])
	case "root-add": // root-add DERFILE: add a certificate to LocalMachine\Root, as an administrator would
		err = rootAdd(args[0])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stdout, "error:", err)
	os.Exit(1)
}

func utf16(s string) *uint16 {
	p, err := windows.UTF16PtrFromString(s)
	if err != nil {
		fail(err)
	}
	return p
}

// started is what the service records about its start.
type started struct {
	Args []string          `json:"args"`
	Env  map[string]string `json:"env"`
}

type handler struct{ out string }

func (h handler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	rec := started{Args: os.Args[4:], Env: map[string]string{}}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PROBE_") {
			rec.Env[k] = v
		}
	}
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(h.out, data, 0o644); err != nil {
		return true, 2
	}
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for r := range req {
		switch r.Cmd {
		case svc.Interrogate:
			status <- r.CurrentStatus
		case svc.Stop, svc.Shutdown:
			status <- svc.Status{State: svc.StopPending}
			return false, 0
		}
	}
	return false, 0
}

func runService(name, out string) error { return svc.Run(name, handler{out: out}) }

// runChild is a program that is no Windows service (as flanneld): it
// records how it was started, with its PID, and runs until it is killed.
func runChild(out string) error {
	rec := struct {
		started
		PID int `json:"pid"`
	}{started: started{Args: os.Args[3:], Env: map[string]string{}}, PID: os.Getpid()}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PROBE_") {
			rec.Env[k] = v
		}
	}
	data, _ := json.Marshal(rec)
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return err
	}
	for {
		time.Sleep(time.Hour)
	}
}

// kill ends a process.
func kill(pid string) error {
	var n uint32
	if _, err := fmt.Sscan(pid, &n); err != nil {
		return err
	}
	h, err := windows.OpenProcess(windows.PROCESS_TERMINATE, false, n)
	if err != nil {
		return err
	}
	defer func() { _ = windows.CloseHandle(h) }()
	return windows.TerminateProcess(h, 1)
}

// pidAlive prints whether a process runs.
func pidAlive(pid string) error {
	var n uint32
	if _, err := fmt.Sscan(pid, &n); err != nil {
		return err
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, n)
	if err != nil {
		fmt.Println("gone")
		return nil
	}
	defer func() { _ = windows.CloseHandle(h) }()
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return err
	}
	if code == 259 { // STILL_ACTIVE
		fmt.Println("alive")
	} else {
		fmt.Println("gone")
	}
	return nil
}

func svcState(name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return err
	}
	defer func() { _ = m.Disconnect() }()
	s, err := m.OpenService(name)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		fmt.Println("absent")
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	st, err := s.Query()
	if err != nil {
		return err
	}
	if st.State == svc.Running {
		fmt.Println("running")
	} else {
		fmt.Println("stopped")
	}
	return nil
}

func regMulti(key, value string) error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.QUERY_VALUE)
	if err != nil {
		return err
	}
	defer func() { _ = k.Close() }()
	vals, _, err := k.GetStringsValue(value)
	if err != nil {
		return err
	}
	for _, v := range vals {
		fmt.Println(v)
	}
	return nil
}

func regExists(key string) error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		fmt.Println("absent")
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Println("present")
	return k.Close()
}

func mutexHold(name, sddl, ready, release string) error {
	// A mutex belongs to the thread that acquired it, and only that
	// thread may release it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return err
	}
	sa := &windows.SecurityAttributes{Length: uint32(unsafe.Sizeof(windows.SecurityAttributes{})), SecurityDescriptor: sd}
	h, err := windows.CreateMutex(sa, true, utf16(name))
	if h == 0 {
		return err
	}
	defer func() { _ = windows.CloseHandle(h) }()
	if errors.Is(err, windows.ERROR_ALREADY_EXISTS) {
		if _, err := windows.WaitForSingleObject(h, windows.INFINITE); err != nil {
			return err
		}
	}
	if err := os.WriteFile(ready, []byte("held"), 0o644); err != nil {
		return err
	}
	// The test creates the release file when it has seen the agent wait.
	for {
		if _, err := os.Stat(release); err == nil {
			return windows.ReleaseMutex(h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// appendHold opens path as containerd opens its --log-file (and
// windows_exporter its --log.file): os.OpenFile for appending, which Go
// opens sharing reads and writes but not deletion. It appends size bytes
// of lines, writes ready, holds the file until release exists, appends
// "after\r\n" and exits.
func appendHold(path, size, ready, release string) error {
	n, err := strconv.Atoi(size)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(path[:strings.LastIndex(path, `\`)], 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	line := []byte("level=info msg=\"a line of the log\"\r\n")
	if _, err := f.Write(bytes.Repeat(line, n/len(line)+1)); err != nil {
		return err
	}
	if err := os.WriteFile(ready, []byte("held"), 0o644); err != nil {
		return err
	}
	for {
		if _, err := os.Stat(release); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = f.Write([]byte("after\r\n"))
	return err
}

// fileSDDL prints the owner and DACL of path, DACL flags included, as
// GetNamedSecurityInfo reports them.
func fileSDDL(path string) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("get the security of %s: %w", path, err)
	}
	fmt.Println(sd.String())
	return nil
}

// openRootStore opens LocalMachine\Root through crypt32's system store
// provider, independently of the agent's code.
func openRootStore() (windows.Handle, error) {
	return windows.CertOpenStore(windows.CERT_STORE_PROV_SYSTEM, 0, 0, windows.CERT_SYSTEM_STORE_LOCAL_MACHINE,
		uintptr(unsafe.Pointer(utf16("ROOT"))))
}

func rootHas(thumbprint string) error {
	store, err := openRootStore()
	if err != nil {
		return fmt.Errorf("CertOpenStore: %w", err)
	}
	defer func() { _ = windows.CertCloseStore(store, 0) }()
	ctx, err := findByEnum(store, thumbprint)
	if err != nil {
		return err
	}
	if ctx == nil {
		fmt.Println("absent")
		return nil
	}
	_ = windows.CertFreeCertificateContext(ctx)
	fmt.Println("present")
	return nil
}

func rootDel(thumbprint string) error {
	store, err := openRootStore()
	if err != nil {
		return fmt.Errorf("CertOpenStore: %w", err)
	}
	defer func() { _ = windows.CertCloseStore(store, 0) }()
	ctx, err := findByEnum(store, thumbprint)
	if err != nil || ctx == nil {
		return err
	}
	if err := windows.CertDeleteCertificateFromStore(ctx); err != nil {
		return fmt.Errorf("CertDeleteCertificateFromStore: %w", err)
	}
	fmt.Println("deleted")
	return nil
}

// findByEnum enumerates the store and compares the SHA-1 of each encoding,
// rather than asking CertFindCertificateInStore as the agent does.
func findByEnum(store windows.Handle, thumbprint string) (*windows.CertContext, error) {
	hash, err := hex.DecodeString(thumbprint)
	if err != nil || len(hash) != 20 {
		return nil, fmt.Errorf("bad thumbprint %q", thumbprint)
	}
	var ctx *windows.CertContext
	for {
		ctx, err = windows.CertEnumCertificatesInStore(store, ctx)
		if err != nil {
			return nil, nil
		}
		der := unsafe.Slice(ctx.EncodedCert, ctx.Length)
		sum := sha1.Sum(der) //nolint:gosec // a thumbprint
		if bytes.Equal(sum[:], hash) {
			return ctx, nil
		}
	}
}

func regSDDL(key string) error {
	sd, err := windows.GetNamedSecurityInfo(`MACHINE\`+key, windows.SE_REGISTRY_KEY, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("get the security of HKLM\\%s: %w", key, err)
	}
	fmt.Println(sd.String())
	return nil
}

func rootAdd(file string) error {
	der, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	cert, err := windows.CertCreateCertificateContext(windows.X509_ASN_ENCODING|windows.PKCS_7_ASN_ENCODING, &der[0], uint32(len(der)))
	if err != nil {
		return fmt.Errorf("CertCreateCertificateContext: %w", err)
	}
	defer func() { _ = windows.CertFreeCertificateContext(cert) }()
	store, err := openRootStore()
	if err != nil {
		return fmt.Errorf("CertOpenStore: %w", err)
	}
	defer func() { _ = windows.CertCloseStore(store, 0) }()
	if err := windows.CertAddCertificateContextToStore(store, cert, windows.CERT_STORE_ADD_REPLACE_EXISTING, nil); err != nil {
		return fmt.Errorf("CertAddCertificateContextToStore: %w", err)
	}
	fmt.Println("added")
	return nil
}
