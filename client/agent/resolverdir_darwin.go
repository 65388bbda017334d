package agent

import "github.com/clearpath-vpn/clearpath/client/splitdns"

// resolverDir: macOS splits DNS by domain with /etc/resolver files.
const resolverDir = splitdns.DefaultResolverDir
