package up

import (
	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
	"github.com/clearpath-vpn/clearpath/internal/jsonout"
)

// Schema names the format of `vpn up --json`: the status after the
// connection, as `vpn status --json` prints it (docs/JSON.md).
var Schema = jsonout.Schema("status", 1)

func writeJSON(f *factory.Factory, v any) error { return jsonout.Write(f.Out, Schema, v) }
