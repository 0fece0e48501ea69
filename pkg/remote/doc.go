// Package remote is the operator's only way to reach a Windows host: an SSH
// connection to the host's OpenSSH server carrying SFTP file transfers and
// program executions with fixed, allow-listed arguments.
//
// The operator never builds a shell command out of user data. [Session.Run]
// refuses any argument containing a character that cmd.exe or PowerShell
// would interpret (see [CheckArgv]) before anything reaches the wire;
// variable data travels in files written with [Session.Upload], which lands
// content under a temporary name, verifies its size and SHA-256 and only then
// renames it into place, so an interrupted transfer never leaves a partial
// file at the destination.
//
// Failures that callers must tell apart are typed and checked with
// [errors.As]: [*AuthError], [*HostKeyMismatchError], [*UnreachableError],
// [*ForbiddenAddressError], [*DiskFullError], [*ArgvError] and [*PathError].
// A session whose connection died returns errors wrapping [ErrConnectionLost].
//
// Dial never connects to an address the operator must not reach
// (link-local, among them the cloud metadata address, multicast,
// unspecified, broadcast: see pkg/hostaddr). It resolves a host name
// itself, checks every address it resolves to, and dials only checked
// addresses; a refused one fails the dial with [*ForbiddenAddressError]
// before any socket is opened.
//
// Windows paths are accepted with either separator and canonicalised by
// [NormalizePath]; [SamePath] compares them as NTFS does, ignoring case.
//
// Private keys never appear in logs or errors: [PrivateKey] redacts itself
// when formatted or marshalled.
package remote
