// Package wine is the Wine tier (`make test-windows-api`, build tag wine):
// it cross-builds the agent and a probe program for Windows and runs them
// under wine64 in a throwaway prefix, so that the agent's Windows backend
// (pkg/wicd/windows) meets real implementations of the Service Control
// Manager, the registry, named mutexes, the event log and Windows file
// semantics. What Wine lacks (recovery settings, HNS, DISM, netsh's
// advfirewall, os.RemoveAll of a tree) is named as a skip, never passed
// over.
package wine
