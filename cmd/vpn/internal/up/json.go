package up

import (
	"encoding/json"

	"github.com/clearpath-vpn/clearpath/cmd/vpn/internal/factory"
)

func writeJSON(f *factory.Factory, v any) error {
	enc := json.NewEncoder(f.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
