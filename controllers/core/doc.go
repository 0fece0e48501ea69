// Package core holds what the operator's controllers share: where the
// operator runs (Config), the types it reads and writes (NewScheme), and
// the rules more than one controller applies, each in one place: which
// Node is an instance's (OwnsNode), which name an instance's host
// registers as (NodeName, DesiredNodeName), and how Events are recorded
// (Recorder). It never touches a host.
package core
