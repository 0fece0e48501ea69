package csrapproval

import (
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/csr"
)

// LastDecision is the decision r last recorded for the CSR name.
func LastDecision(r *Reconciler, name string) (csr.Decision, bool) { return r.seen.lastDecision(name) }

// TokensOf is the token reader r decides with.
func TokensOf(r *Reconciler) bootstrap.Issuer { return r.tokens }
