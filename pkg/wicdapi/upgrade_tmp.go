package wicdapi

// TEMPORARY: the lead's stand-in for the agent helper's contract; replaced
// at merge.

// StagePlanPath is where the operator uploads a StagePlan.
const StagePlanPath = `C:\k\stage.json`

// StagePlan lists local copies.
type StagePlan struct {
	Copies []StageCopy `json:"copies"`
}

// StageCopy copies a file on the host.
type StageCopy struct {
	From   string `json:"from"`
	To     string `json:"to"`
	SHA256 string `json:"sha256"`
}

// StageResult is what `wicd stage` prints.
type StageResult struct {
	Copied  int   `json:"copied"`
	Bytes   int64 `json:"bytes"`
	Present int   `json:"present"`
}

// PruneResult is what `wicd prune` prints.
type PruneResult struct {
	Removed []string   `json:"removed,omitempty"`
	Kept    []HeldFile `json:"kept,omitempty"`
}
