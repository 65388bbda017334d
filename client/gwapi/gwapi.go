// Package gwapi is the client side of the gateway API (server/api).
package gwapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/clearpath-vpn/clearpath/client/trust"
	"github.com/clearpath-vpn/clearpath/server/api"
)

// Client calls one gateway.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the gateway at server (an http(s) URL).
func New(server string) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want an http(s) URL such as https://vpn.example.com", server)
	}
	return &Client{base: strings.TrimRight(server, "/"), http: &http.Client{Timeout: 20 * time.Second}}, nil
}

// WithHTTPClient makes c use hc (e.g. one dialling from a lab namespace).
func (c *Client) WithHTTPClient(hc *http.Client) *Client {
	c.http = hc
	return c
}

// APIError is an error answer of the gateway.
type APIError struct {
	Status int
	Body   api.Error
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("gateway refused (%d %s): %s", e.Status, e.Body.Error, e.Body.Message)
	if len(e.Body.Networks) > 0 {
		msg += " [networks: " + strings.Join(e.Body.Networks, ", ") + "]"
	}
	return msg
}

func (c *Client) do(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, trust.Explain(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil || e.Body.Error == "" {
			e.Body = api.Error{Error: http.StatusText(resp.StatusCode), Message: strings.TrimSpace(string(data))}
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
		}
	}
	return nil
}

// Discover fetches the gateway's discovery document.
func (c *Client) Discover(ctx context.Context) (*api.Discovery, error) {
	var d api.Discovery
	if err := c.do(ctx, http.MethodGet, api.PathDiscovery, "", nil, &d); err != nil {
		return nil, err
	}
	if major, _, _ := strings.Cut(d.APIVersion, "."); major != api.APIVersion {
		return nil, fmt.Errorf("gateway speaks API version %q; this client knows %q: upgrade the client", d.APIVersion, api.APIVersion)
	}
	return &d, nil
}

// Networks returns the networks the token lets its holder join, with their
// public keys, and the subject the gateway sees in the token.
func (c *Client) Networks(ctx context.Context, token string) (*api.NetworkList, error) {
	var nl api.NetworkList
	if err := c.do(ctx, http.MethodGet, api.PathNetworks, token, nil, &nl); err != nil {
		return nil, err
	}
	return &nl, nil
}

// NetworkRequiredError means the user belongs to several networks and
// named none.
type NetworkRequiredError struct{ Networks []string }

func (e *NetworkRequiredError) Error() string {
	return "you belong to several networks; choose one with --network: " + strings.Join(e.Networks, ", ")
}

// Device is what a registration says about this device.
type Device struct {
	Key      wgtypes.Key // private key; only a proof made with it leaves the device
	ID       string      // device id, kept in the state dir
	Hostname string
	OS       string
}

// Registration is the gateway's answer: the peer config and the session's
// preshared key, opened with the device's key.
type Registration struct {
	Config       *api.PeerConfig
	PresharedKey wgtypes.Key
}

// Register registers the device in network ("" = the only one the token
// allows): it fetches the network's key, seals the claims with the device
// key, and opens the session key of the answer.
func (c *Client) Register(ctx context.Context, token, network string, d Device) (*Registration, error) {
	nl, err := c.Networks(ctx, token)
	if err != nil {
		return nil, err
	}
	nw, err := choose(nl.Networks, network)
	if err != nil {
		return nil, err
	}
	netPub, err := api.ParseKey(nw.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("gateway sent a bad key for network %s: %w", nw.Name, err)
	}
	claims := api.RegisterClaims{Subject: nl.Subject, Network: nw.Name, DeviceID: d.ID, Hostname: d.Hostname, OS: d.OS, IssuedAt: time.Now().Unix()}
	req, err := api.SealRegistration(claims, nw.Name, d.Key, netPub)
	if err != nil {
		return nil, err
	}
	return c.Post(ctx, token, req, d.Key, netPub)
}

// Post sends a sealed registration request and opens the answer's session
// key with devicePriv; netPub is the key the request was sealed to.
func (c *Client) Post(ctx context.Context, token string, req api.RegisterRequest, devicePriv wgtypes.Key, netPub api.Key) (*Registration, error) {
	var pc api.PeerConfig
	if err := c.do(ctx, http.MethodPost, api.PathPeers, token, req, &pc); err != nil {
		return nil, err
	}
	if err := Validate(&pc); err != nil {
		return nil, fmt.Errorf("gateway sent a bad peer config: %w", err)
	}
	if pc.Gateway.PublicKey != base64.StdEncoding.EncodeToString(netPub[:]) {
		return nil, fmt.Errorf("gateway answered with key %s, not the network's %s", pc.Gateway.PublicKey, base64.StdEncoding.EncodeToString(netPub[:]))
	}
	if pc.Session == nil {
		return nil, errors.New("gateway sent no session key")
	}
	psk, err := api.OpenSecret(*pc.Session, devicePriv, netPub)
	if err != nil {
		return nil, fmt.Errorf("gateway's session key: %w", err)
	}
	return &Registration{Config: &pc, PresharedKey: psk}, nil
}

func choose(networks []api.NetworkInfo, want string) (api.NetworkInfo, error) {
	var names []string
	for _, n := range networks {
		if n.Name == want {
			return n, nil
		}
		names = append(names, n.Name)
	}
	switch {
	case want != "":
		return api.NetworkInfo{}, fmt.Errorf("you may not join network %q; your networks: %s", want, strings.Join(names, ", "))
	case len(networks) == 1:
		return networks[0], nil
	case len(networks) == 0:
		return api.NetworkInfo{}, errors.New("the gateway offers you no network")
	}
	return api.NetworkInfo{}, &NetworkRequiredError{Networks: names}
}

// Self returns the caller's peer config in network ("" = the only one) for
// device ("" = the only one).
func (c *Client) Self(ctx context.Context, token, network, device string) (*api.PeerConfig, error) {
	var pc api.PeerConfig
	return &pc, c.do(ctx, http.MethodGet, api.PathPeerSelf+query(network, device), token, nil, &pc)
}

// DeleteSelf removes the caller's peer of device in network.
func (c *Client) DeleteSelf(ctx context.Context, token, network, device string) error {
	return c.do(ctx, http.MethodDelete, api.PathPeerSelf+query(network, device), token, nil, nil)
}

func query(network, device string) string {
	v := url.Values{}
	if network != "" {
		v.Set("network", network)
	}
	if device != "" {
		v.Set("device", device)
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// IsStatus reports whether err is a gateway answer with HTTP status code.
func IsStatus(err error, code int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == code
}
