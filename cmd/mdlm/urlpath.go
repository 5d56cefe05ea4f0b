package main

import (
	"reflect"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/objstore"
)

// urlPathMappers let every flag of kong type "path" or "existingdir" also
// take an object store location, s3://bucket/prefix, as written: kong's own
// mappers would make it a local path (or refuse it as a missing directory).
// stage.Execute fetches s3:// inputs and publishes s3:// outputs (README
// "Object storage"); local values keep kong's expansion and checks.
func urlPathMappers() []kong.Option {
	r := kong.NewRegistry().RegisterDefaults()
	var opts []kong.Option
	for _, name := range []string{"path", "existingdir"} {
		m := urlOr(r.ForNamedType(name, reflect.TypeFor[string]()))
		// Kong's list decoder looks the element's mapper up in r: make it ours.
		r.RegisterName(name, m)
		opts = append(opts, kong.NamedMapper(name, m))
	}
	return opts
}

// urlOr decodes an s3:// string value as written and anything else with
// builtin.
func urlOr(builtin kong.Mapper) kong.MapperFunc {
	return func(ctx *kong.DecodeContext, target reflect.Value) error {
		if target.Kind() == reflect.String {
			if t := ctx.Scan.Peek(); !t.IsEOL() {
				if s, ok := t.Value.(string); ok && objstore.IsURL(s) {
					ctx.Scan.Pop()
					target.SetString(s)
					return nil
				}
			}
		}
		return builtin.Decode(ctx, target)
	}
}
