// Package winsim simulates a Windows Server host well enough for the
// operator to configure it: a real SSH server (golang.org/x/crypto/ssh) on
// loopback that authenticates public keys, serves SFTP (github.com/pkg/sftp)
// over an in-memory, case-insensitive C: drive, and runs "programs" — Go
// functions registered by path — for exec requests, as Windows OpenSSH runs
// executables through cmd.exe.
//
// Each Host is independent: Start one per simulated machine, from a test or
// from a demo program, with no other setup.
//
//	h, err := winsim.Start(ctx, winsim.Options{OSBuild: 20348})
//	...
//	defer h.Close()
//	h.AuthorizeKey("Administrator", signer.PublicKey())
//	h.RegisterProgram(`C:\k\wicd.exe`, winsim.ProgramFunc(agent))
//	// dial h.Address() with h.HostKey() pinned
//
// Faults can be injected while the host runs, from any goroutine: drop a
// connection after some bytes (DropAfter), refuse authentication
// (RefuseAuth), replace the host key (RotateHostKey), limit bandwidth and
// add latency (SetBandwidth, SetLatency), fill the disk (Disk().SetQuota)
// and reboot (Reboot). Components (a service manager, a kubelet emulator)
// attach with AddComponent and are shut down and booted with the host.
//
// Counters (Stats) and state (State, WaitUp, Disk) let tests observe the
// host without sleeping.
//
// The SSH server reads public keys as OpenSSH for Windows does, from the
// authorized keys file on the virtual disk at every login:
// AdministratorsAuthorizedKeysPath for members of Administrators (every
// user unless SetAdmin says otherwise), the user's own
// C:\Users\<user>\.ssh\authorized_keys for others. Lines that are not
// keys are skipped, and the administrators' file is refused when its
// security descriptor (Disk.SetSecurity) lets anyone but SYSTEM and
// Administrators write to it. AuthorizeKey and RevokeKeys edit that file.
//
// Deliberate simplifications: one drive (C:), no ACLs beyond that recorded
// descriptor, no file locking, no short (8.3) names, no alternate data
// streams, and exec requests are split on spaces rather than parsed by
// cmd.exe (the operator only sends allow-listed arguments, which contain no
// quotes or spaces).
package winsim
