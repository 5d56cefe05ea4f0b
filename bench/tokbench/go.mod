module github.com/mdlm-go/mdlm/bench/tokbench

go 1.27

replace github.com/mdlm-go/mdlm => ../..

require (
	github.com/mdlm-go/mdlm v0.0.0-00010101000000-000000000000
	github.com/tiktoken-go/tokenizer v0.10.0
)

require (
	github.com/daulet/tokenizers v1.24.0 // indirect
	github.com/dlclark/regexp2/v2 v2.5.1 // indirect
	golang.org/x/text v0.41.0 // indirect
)
