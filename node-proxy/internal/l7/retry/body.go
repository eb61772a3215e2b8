package retry

import "io"

// MaxReplayBody is the largest request body the proxy buffers so that it
// can replay it on a retry. Requests with larger bodies get one attempt.
const MaxReplayBody = 64 << 10

// ReplayableBody reads up to limit bytes of body plus one more, to learn
// whether the body fits. If it fits (fit is true), buf is the whole body:
// send bytes.NewReader(buf) on every attempt. If not, buf is the part
// already read (limit+1 bytes) and the request must not be retried: send
// io.MultiReader(bytes.NewReader(buf), body) once. A nil body fits. A read
// error is returned with what was read, and fit false.
func ReplayableBody(body io.Reader, limit int) (buf []byte, fit bool, err error) {
	if body == nil {
		return nil, true, nil
	}
	limit = max(limit, 0)
	buf, err = io.ReadAll(io.LimitReader(body, int64(limit)+1))
	if err != nil {
		return buf, false, err
	}
	return buf, len(buf) <= limit, nil
}
