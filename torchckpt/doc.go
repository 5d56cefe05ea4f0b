// Package torchckpt reads the reference's PyTorch Lightning training
// checkpoints (.ckpt, also .pt and .pth): the zip archives torch.save writes
// (torch/serialization.py: _save), whose data.pkl pickle (protocol 2 to 5)
// holds state_dict, the EMA's shadow_params (models/ema.py: ExponentialMovingAverage),
// the Hydra config under hyper_parameters and Lightning's bookkeeping.
//
// Read returns the float32 tensors of state_dict and ema.shadow_params, the
// EMA decay and update count, global_step and hyper_parameters.config as plain
// Go values; IsArchive says whether a path looks like such a file. Turning
// what Read returns into a checkpoint/v1 artifact is package checkpoint's
// (checkpoint/from_lightning.go).
//
// Every byte of the file is treated as hostile: nothing read from it sizes an
// allocation before it is checked against what the file can hold, and a file
// that breaks a limit is refused with an error naming the file, the entry or
// value, and the limit. The limits:
//
//   - archive layout (torchzip.go): clean, unique entry names under a single
//     top folder; exactly one data.pkl; no TorchScript (constants.pkl); a
//     byteorder entry, if any, of at most 16 bytes saying "little"; entries
//     stored or deflated only, each within the file's bytes, a deflated one
//     claiming at most maxDeflateRatio (1032) times its compressed size, and
//     its length and CRC-32 verified on reading.
//   - storages and tensors (torchzip.go): a storage's element count must match
//     its data/<key> record's size exactly; at most maxTensors (2^20) tensors
//     of rank at most maxDims (64); a view's sizes, strides and offset must
//     keep every element inside its storage, with no overflow and no more
//     elements than the storage; all views materialised together at most
//     twice the elements of the storages the pickle refers to (tied weights).
//   - the pickle (picklescan.go): data.pkl at most maxPickle (64 MiB); every
//     opcode is walked before decoding: at most maxPickleOps (2,000,000)
//     opcodes, FRAME and length-prefixed arguments within the bytes left,
//     INT/LONG/FLOAT text of at most maxNumberLine (256) digits, LONG1/LONG4
//     integers of 1 to maxLongBytes (1024) bytes, no copyreg extensions, no
//     unknown opcode; a decoder panic on a pickle that passed is an error.
//   - pickled values (values.go): walks of the decoded values nest at most
//     maxDepth (1000) deep and visit at most maxSteps (2^20) values, so a
//     value that contains itself or is shared at every level is refused.
package torchckpt
