package winsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// serverVersion is the banner Windows Server's OpenSSH sends.
const serverVersion = "SSH-2.0-OpenSSH_for_Windows_9.5"

// handshakeTimeout bounds how long a connection may take to authenticate.
const handshakeTimeout = 30 * time.Second

var errDenied = errors.New("winsim: public key denied")

// serve accepts connections on ln until it is closed.
func (h *Host) serve(ln net.Listener) {
	for {
		raw, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			h.log.Error("Accept failed", "err", err)
			if !sleep(h.closedCh, 10*time.Millisecond) {
				return
			}
			continue
		}
		h.mu.Lock()
		if h.state != StateUp || h.ln != ln {
			h.mu.Unlock()
			_ = raw.Close()
			continue
		}
		c := newSimConn(raw, h.nw, h.forget)
		h.conns[c] = struct{}{}
		boot := h.boot
		h.mu.Unlock()
		go h.handleConn(c, boot)
	}
}

func (h *Host) forget(c *simConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
}

// serverConfig returns the SSH configuration for a new connection, with
// the host keys of this moment.
func (h *Host) serverConfig(authFailed *atomic.Bool) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		ServerVersion: serverVersion,
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if h.refuseAuth.Load() || !h.isAuthorized(meta.User(), key) {
				authFailed.Store(true)
				return nil, errDenied
			}
			return &ssh.Permissions{}, nil
		},
	}
	if h.passwordOnly.Load() {
		cfg.PublicKeyCallback = nil
		cfg.PasswordCallback = func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) {
			authFailed.Store(true)
			return nil, errDenied
		}
	}
	h.mu.Lock()
	for _, k := range h.hostKeys {
		cfg.AddHostKey(k)
	}
	h.mu.Unlock()
	return cfg
}

// handleConn runs one SSH connection.
func (h *Host) handleConn(c *simConn, boot *bootSession) {
	var authFailed atomic.Bool
	timer := time.AfterFunc(handshakeTimeout, c.abort)
	sc, chans, reqs, err := ssh.NewServerConn(c, h.serverConfig(&authFailed))
	timer.Stop()
	if err != nil {
		if authFailed.Load() {
			h.authFailures.Add(1)
		}
		h.log.Debug("Handshake failed", "remote", c.RemoteAddr(), "err", err)
		_ = c.Close()
		return
	}
	h.connections.Add(1)
	user := sc.User()
	h.log.Debug("Connection opened", "remote", c.RemoteAddr(), "user", user)

	// Global requests (keepalive@openssh.com) are refused, as OpenSSH
	// does; the reply itself proves the host alive.
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels are supported")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		h.sessions.Add(1)
		go h.handleSession(boot, user, ch, chReqs)
	}
	_ = sc.Close()
}

// handleSession serves one session channel: a single exec or sftp
// subsystem request.
func (h *Host) handleSession(boot *bootSession, user string, ch ssh.Channel, reqs <-chan *ssh.Request) {
	// The channel's context ends when the client closes the channel (its
	// request stream then ends) or the host shuts down.
	ctx, cancel := context.WithCancel(boot.ctx)
	defer cancel()
	started := false
	for req := range reqs {
		ok := false
		// replied lets the command or subsystem start once the request's
		// reply is on the wire. sshd replies before the child can write:
		// a quick program's output, exit-status and close must never
		// overtake the reply, or the client's exec request sees the
		// channel closed (io.EOF) instead of its answer.
		replied := make(chan struct{})
		switch req.Type {
		case "exec":
			var payload struct{ Command string }
			if started || ssh.Unmarshal(req.Payload, &payload) != nil {
				break
			}
			if !h.startProgram(boot, func() { <-replied; h.exec(ctx, user, ch, payload.Command) }) {
				break
			}
			started, ok = true, true
		case "subsystem":
			var payload struct{ Name string }
			if started || ssh.Unmarshal(req.Payload, &payload) != nil || payload.Name != "sftp" {
				break
			}
			started, ok = true, true
			go func() { <-replied; h.serveSFTP(user, ch) }()
		}
		// pty-req, env, shell, signal and anything else are refused.
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		close(replied)
	}
}

// startProgram runs fn as a program of the current boot, unless the host
// is shutting down.
func (h *Host) startProgram(boot *bootSession, fn func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != StateUp || h.boot != boot {
		return false
	}
	boot.running.Add(1)
	go func() {
		defer boot.running.Done()
		fn()
	}()
	return true
}

// exec runs a command line the way Windows OpenSSH does through cmd.exe,
// except that the line is simply split on spaces.
func (h *Host) exec(ctx context.Context, user string, ch ssh.Channel, command string) {
	h.commands.Add(1)
	h.log.Debug("Command started", "command", command)
	argv := strings.FieldsFunc(command, func(r rune) bool { return r == ' ' })
	code := 0
	if len(argv) > 0 {
		prog, path, ok := h.lookupProgram(argv[0])
		if ok {
			ended := h.obs.request(Request{Kind: "exec", User: user, Args: argv})
			code = h.runProgram(ctx, prog, &Invocation{
				Host:   h,
				User:   user,
				Path:   path,
				Args:   argv,
				Stdin:  ch,
				Stdout: ch,
				Stderr: ch.Stderr(),
			})
			ended()
		} else {
			_, _ = ch.Stderr().Write([]byte(notRecognized(argv[0])))
			code = 1
		}
	}
	h.log.Debug("Command finished", "command", command, "exitCode", code)
	_ = ch.CloseWrite()
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(code)}))
	_ = ch.Close()
}

// runProgram calls p, turning a panic into a crash report on stderr and
// exit code 2, as an unrecovered Go panic would exit. While it runs, the
// program's file (when it is on the disk) is held as a running image is:
// it cannot be deleted or replaced.
func (h *Host) runProgram(ctx context.Context, p Program, inv *Invocation) (code int) {
	if release, err := h.disk.Hold(inv.Path, fmt.Sprintf("%s (PID %d)", baseName(inv.Path), newPID())); err == nil {
		defer release()
	}
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("Program panicked", "path", inv.Path, "panic", r)
			_, _ = fmt.Fprintf(inv.Stderr, "panic: %v\r\n\r\n%s", r, debug.Stack())
			code = 2
		}
	}()
	return p.Run(ctx, inv)
}

// serveSFTP runs the SFTP subsystem on ch.
func (h *Host) serveSFTP(user string, ch ssh.Channel) {
	defer h.obs.request(Request{Kind: "sftp", User: user})()
	fsys := &sftpFS{obs: &h.obs, disk: h.disk, noSpace: h.opts.ReportNoSpace, noPosixRename: h.opts.DisablePosixRename, home: "/C:/Users/" + user, log: h.log,
		admin: func() bool { return h.IsAdmin(user) }}
	// The allocator reuses packet buffers (the handlers copy what they
	// are given): a fresh 32 KiB per write request was a tenth of the
	// simulator's CPU in a 50-host join, with the collections it caused.
	srv := sftp.NewRequestServer(ch, sftp.Handlers{FileGet: fsys, FilePut: fsys, FileCmd: fsys, FileList: fsys},
		sftp.WithStartDirectory(fsys.home), sftp.WithRSAllocator())
	if err := srv.Serve(); err != nil {
		h.log.Debug("SFTP session ended", "err", err)
	}
	_ = srv.Close()
	_ = ch.Close()
}
