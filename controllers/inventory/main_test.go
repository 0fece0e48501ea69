package inventory_test

import (
	"os"
	"testing"

	"github.com/openwmco/wmco/test/ctrltest"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }
