package workers

import (
	"context"
	"io"
	"time"
)

// RateReader is an io.Reader capped at a byte rate by a token bucket whose
// burst is one second's worth of bytes (at least 4 KiB).
type RateReader struct {
	ctx    context.Context
	r      io.Reader
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

// NewRateReader wraps r so that it yields at most bytesPerSecond on average.
// A cancelled ctx ends a wait with ctx.Err().
func NewRateReader(ctx context.Context, r io.Reader, bytesPerSecond int64) *RateReader {
	rate := float64(max(bytesPerSecond, 1))
	burst := max(rate, 4096)
	return &RateReader{ctx: ctx, r: r, rate: rate, burst: burst, tokens: burst, last: time.Now()}
}

// Read implements io.Reader.
func (rr *RateReader) Read(p []byte) (int, error) {
	if len(p) > int(rr.burst) {
		p = p[:int(rr.burst)]
	}
	now := time.Now()
	rr.tokens = min(rr.burst, rr.tokens+now.Sub(rr.last).Seconds()*rr.rate)
	rr.last = now
	if need := float64(len(p)) - rr.tokens; need > 0 {
		wait := time.Duration(need / rr.rate * float64(time.Second))
		t := time.NewTimer(wait)
		select {
		case <-rr.ctx.Done():
			t.Stop()
			return 0, rr.ctx.Err()
		case <-t.C:
		}
		rr.tokens += wait.Seconds() * rr.rate
		rr.last = time.Now()
	}
	n, err := rr.r.Read(p)
	rr.tokens -= float64(n)
	return n, err
}
