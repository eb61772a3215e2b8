//go:build linux

package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// criClient is the little of the CRI RuntimeService that teardown needs:
// list, stop and remove pod sandboxes. Stopping a sandbox through the
// runtime (rather than killing its processes) runs CNI DEL, which frees the
// pod's address and removes its portmap rules.
//
// k8s.io/cri-api is not in this module's graph, so the three messages are
// encoded by hand; they are small and stable (runtime.v1, api.proto):
//
//	ListPodSandboxRequest   {}                         -> ListPodSandboxResponse { repeated PodSandbox items = 1 }
//	PodSandbox              { string id = 1; PodSandboxMetadata metadata = 2 }
//	PodSandboxMetadata      { string name = 1; string uid = 2; string namespace = 3 }
//	StopPodSandboxRequest   { string pod_sandbox_id = 1 } -> {}
//	RemovePodSandboxRequest { string pod_sandbox_id = 1 } -> {}
type criClient struct {
	conn *grpc.ClientConn
}

const criService = "/runtime.v1.RuntimeService/"

// sandbox is a pod sandbox as ListPodSandbox reports it.
type sandbox struct {
	ID, Name, Namespace string
}

func dialCRI(socket string) (*criClient, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial CRI %s: %w", socket, err)
	}
	return &criClient{conn: conn}, nil
}

func (c *criClient) Close() error { return c.conn.Close() }

func (c *criClient) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	var resp []byte
	if err := c.conn.Invoke(ctx, criService+method, &req, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return nil, fmt.Errorf("CRI %s: %w", method, err)
	}
	return resp, nil
}

func (c *criClient) listPodSandboxes(ctx context.Context) ([]sandbox, error) {
	resp, err := c.call(ctx, "ListPodSandbox", nil)
	if err != nil {
		return nil, err
	}
	var out []sandbox
	err = eachField(resp, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		var s sandbox
		err := eachField(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1:
				s.ID = string(v)
			case 2:
				return eachField(v, func(num protowire.Number, v []byte) error {
					switch num {
					case 1:
						s.Name = string(v)
					case 3:
						s.Namespace = string(v)
					}
					return nil
				})
			}
			return nil
		})
		out = append(out, s)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decode ListPodSandboxResponse: %w", err)
	}
	return out, nil
}

func (c *criClient) stopPodSandbox(ctx context.Context, id string) error {
	_, err := c.call(ctx, "StopPodSandbox", idRequest(id))
	return err
}

func (c *criClient) removePodSandbox(ctx context.Context, id string) error {
	_, err := c.call(ctx, "RemovePodSandbox", idRequest(id))
	return err
}

// stopAllPods stops and removes every pod sandbox, each within perPod, and
// returns how many there were.
func (c *criClient) stopAllPods(ctx context.Context, perPod time.Duration) (int, error) {
	lctx, cancel := context.WithTimeout(ctx, perPod)
	pods, err := c.listPodSandboxes(lctx)
	cancel()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, p := range pods {
		pctx, cancel := context.WithTimeout(ctx, perPod)
		if err := c.stopPodSandbox(pctx, p.ID); err != nil {
			errs = append(errs, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err))
		} else if err := c.removePodSandbox(pctx, p.ID); err != nil {
			errs = append(errs, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err))
		}
		cancel()
	}
	return len(pods), errors.Join(errs...)
}

func idRequest(id string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(b, id)
}

// eachField calls f with the number and payload of every length-delimited
// field of the message b, skipping other wire types.
func eachField(b []byte, f func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			if err := f(num, v); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil
}

// rawCodec sends and receives already-encoded protobuf messages (*[]byte).
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }
