package backbone

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

const dtypesInt32 = dtypes.Int32

// shapesOf is an int32 shape [1, ..., 1, n] of rank r.
func shapesOf(n, r int) shapes.Shape {
	dims := make([]int, r)
	for i := range dims {
		dims[i] = 1
	}
	dims[r-1] = n
	return shapes.Make(dtypes.Int32, dims...)
}
