package workers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// ErrChangedWhileUploading is wrapped by Submitter.Submit when a file's
// bytes no longer hash to the SHA-256 computed before its upload (it is
// still being written); nothing was stored, and a later try may succeed.
var ErrChangedWhileUploading = errors.New("file changed while it was uploaded")

// putObject stores r in the object store bucket DumpBucket under name with
// the object store's wire layout (chunks on $O.<bucket>.C.<nuid>, then the
// metadata on $O.<bucket>.M.<base64url(name)> with a subject rollup), so any
// object store client reads it. Unlike ObjectStore.Put, which keeps up to
// 4,000 chunks in flight (gigabytes for a MEMORY.DMP, refused by the server
// with 429 "too many requests"), it waits for the acknowledgements every
// window chunks: memory and server queues stay bounded by window*chunk.
func putObject(ctx context.Context, js jetstream.JetStream, name, desc string, chunk uint32, window int, r io.Reader) (*jetstream.ObjectInfo, error) {
	id := nuid.Next()
	chunkSubj := "$O." + DumpBucket + ".C." + id
	h := sha256.New()
	buf := make([]byte, chunk)
	var sent uint32
	var total uint64
	var acks []jetstream.PubAckFuture
	wait := func() error {
		for _, a := range acks {
			select {
			case <-a.Ok():
			case err := <-a.Err():
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		acks = acks[:0]
		return nil
	}
	fail := func(err error) (*jetstream.ObjectInfo, error) {
		// Best effort: endpoints usually lack the purge permission, and
		// orphan chunks are removed with the bucket's TTL anyway.
		if st, serr := js.Stream(context.WithoutCancel(ctx), "OBJ_"+DumpBucket); serr == nil {
			st.Purge(context.WithoutCancel(ctx), jetstream.WithPurgeSubject(chunkSubj))
		}
		return nil, err
	}
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			m := nats.NewMsg(chunkSubj)
			m.Data = append([]byte(nil), buf[:n]...)
			a, err := js.PublishMsgAsync(m)
			if err != nil {
				return fail(err)
			}
			acks = append(acks, a)
			sent++
			total += uint64(n)
			if len(acks) >= window {
				if err := wait(); err != nil {
					return fail(fmt.Errorf("chunk %d: %w", sent, err))
				}
			}
		}
		if rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return fail(rerr)
		}
	}
	if err := wait(); err != nil {
		return fail(err)
	}
	// The object's name is the SHA-256 the submitter computed before the
	// upload: if the file changed since (a dump still being written), its
	// metadata must not be written, or a worker would fetch bytes that do
	// not match the name and fail the dump permanently.
	if got := hex.EncodeToString(h.Sum(nil)); validSHA256(name) && got != name {
		return fail(fmt.Errorf("%w: the bytes sent hash to %s, not %s", ErrChangedWhileUploading, got, name))
	}
	info := &jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: name, Description: desc, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunk}},
		Bucket:     DumpBucket,
		NUID:       id,
		Size:       total,
		ModTime:    time.Now().UTC(),
		Chunks:     sent,
		Digest:     jetstream.GetObjectDigestValue(h),
	}
	mm := nats.NewMsg("$O." + DumpBucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name)))
	mm.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	data, err := json.Marshal(info)
	if err != nil {
		return fail(err)
	}
	mm.Data = data
	if _, err := js.PublishMsg(ctx, mm); err != nil {
		return fail(fmt.Errorf("object metadata: %w", err))
	}
	return info, nil
}
