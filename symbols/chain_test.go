package symbols

import (
	"context"
	"testing"
	"time"
)

// TestFlightPanicReachesWaiters makes the lookup that others wait for
// panic: the waiters must get an error, not an empty path without one.
func TestFlightPanicReachesWaiters(t *testing.T) {
	joined := false
	for try := 0; try < 20 && !joined; try++ {
		var g flightGroup
		started, release := make(chan struct{}), make(chan struct{})
		go func() {
			defer func() { _ = recover() }()
			g.do(context.Background(), "k", func() (Found, error) {
				close(started)
				<-release
				panic("boom")
			})
		}()
		<-started
		type result struct {
			f   Found
			err error
		}
		done := make(chan result)
		go func() {
			f, err := g.do(context.Background(), "k", func() (Found, error) { return Found{Path: "own lookup"}, nil })
			done <- result{f, err}
		}()
		time.Sleep(20 * time.Millisecond) // let the waiter join the flight
		close(release)
		r := <-done
		switch {
		case r.f.Path == "own lookup":
			continue // the waiter came too late and looked up itself: try again
		case r.err == nil:
			t.Fatalf("waiter got %+v and no error from a lookup that panicked", r.f)
		}
		joined = true
	}
	if !joined {
		t.Skip("the waiter never joined the flight")
	}
}
