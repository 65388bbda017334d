package control

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
)

// oneShot is the client's transport: each request dials the socket, is
// written and its answer read on the calling goroutine, and the connection
// closes with the answer's body. net/http's Transport hands a new
// connection between goroutines (dial, read and write loops), some
// milliseconds on a busy machine at every vpn start, for keep-alives a
// command that sends one request never uses.
type oneShot struct{ socket string }

func (t oneShot) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	var d net.Dialer
	conn, err := d.DialContext(req.Context(), "unix", t.socket)
	if err != nil {
		return nil, err
	}
	// The request's context ending (a cancelled `vpn up`) ends the
	// exchange: the blocked write or read returns.
	stop := context.AfterFunc(req.Context(), func() { conn.Close() })
	out := req.Clone(req.Context())
	out.Close = true // Connection: close: one request per connection
	if err := out.Write(conn); err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		stop()
		conn.Close()
		return nil, err
	}
	resp.Body = &connBody{ReadCloser: resp.Body, conn: conn, stop: stop}
	return resp, nil
}

// connBody closes the connection with the body.
type connBody struct {
	io.ReadCloser
	conn net.Conn
	stop func() bool
}

func (b *connBody) Close() error {
	err := b.ReadCloser.Close()
	b.stop()
	b.conn.Close()
	return err
}
