package pipeline

import "github.com/mdlm-go/mdlm/stages"

// reg is the real stage table's registry, for tests that load the shipped
// pipeline files (package pipeline itself imports no stage: the command passes
// the registry in).
var reg = stages.Registry()
