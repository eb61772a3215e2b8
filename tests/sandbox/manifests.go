package sandbox

import (
	"bytes"
	"fmt"
	"maps"
	"strings"

	"sigs.k8s.io/yaml"
)

// manifests returns MeshFile: the Kubernetes objects a cluster would hold
// for the mesh's pods, as the control plane's --config-dir mode reads them
// (see control-plane/internal/source/dir). What a scheduler and kubelet
// would fill in is written by hand: spec.nodeName, status.podIP, a Ready
// condition, metadata.uid. EndpointSlices are left to the control plane,
// which derives them from the selectors.
func (m *Mesh) manifests() ([]byte, error) {
	var docs []any
	for _, ns := range m.namespaces {
		ann := maps.Clone(ns.Annotations)
		if ns.Enrolled {
			if ann == nil {
				ann = map[string]string{}
			}
			ann[meshKey] = meshEnabled
		}
		docs = append(docs, object("v1", "Namespace", "", ns.Name, ns.Labels, ann, nil))
	}
	sas := map[string]bool{}
	for _, p := range m.pods {
		if key := p.Namespace + "/" + p.ServiceAccount; !sas[key] {
			sas[key] = true
			docs = append(docs, object("v1", "ServiceAccount", p.Namespace, p.ServiceAccount, nil, nil, nil))
		}
	}
	for _, p := range m.pods {
		o := object("v1", "Pod", p.Namespace, p.Name, p.Labels, p.Annotations, map[string]any{
			"spec": map[string]any{
				"nodeName":           p.Node,
				"serviceAccountName": p.ServiceAccount,
				"containers": []any{map[string]any{
					"name":  "echo",
					"image": "weft-echo",
					"ports": []any{
						map[string]any{"name": "http", "containerPort": EchoHTTPPort},
						map[string]any{"name": "grpc", "containerPort": EchoGRPCPort},
						map[string]any{"name": "tcp-echo", "containerPort": EchoTCPPort},
					},
				}},
			},
			"status": map[string]any{
				"phase":      "Running",
				"podIP":      p.IP.String(),
				"podIPs":     []any{map[string]any{"ip": p.IP.String()}},
				"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			},
		})
		o["metadata"].(map[string]any)["uid"] = p.UID
		docs = append(docs, o)
	}
	for _, s := range m.services {
		var ports []any
		for _, port := range s.Ports {
			target := port.TargetPort
			if target == 0 {
				target = port.Port
			}
			pm := map[string]any{"name": port.Name, "port": port.Port, "targetPort": target, "protocol": "TCP"}
			if port.AppProtocol != "" {
				pm["appProtocol"] = port.AppProtocol
			}
			ports = append(ports, pm)
		}
		spec := map[string]any{
			"type":       "ClusterIP",
			"clusterIP":  s.IP.String(),
			"clusterIPs": []any{s.IP.String()},
			"ports":      ports,
		}
		if s.Selector != nil {
			spec["selector"] = s.Selector
		}
		docs = append(docs, object("v1", "Service", s.Namespace, s.Name, nil, nil, map[string]any{"spec": spec}))
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by the weft sandbox %s: the cluster's objects, as an apiserver would hold them.\n", m.plan.name)
	for _, d := range docs {
		y, err := yaml.Marshal(d)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// extraManifests returns ExtraFile: MeshConfig.Extra joined as documents.
func (m *Mesh) extraManifests() []byte {
	var b bytes.Buffer
	b.WriteString("# MeshConfig.Extra of the weft sandbox " + m.plan.name + ".\n")
	for _, d := range m.cfg.Extra {
		b.WriteString("---\n")
		b.WriteString(strings.TrimPrefix(strings.TrimSpace(d), "---\n"))
		b.WriteString("\n")
	}
	return b.Bytes()
}

// object builds a Kubernetes object as a map; rest adds spec, status, ...
func object(apiVersion, kind, namespace, name string, labels, annotations map[string]string, rest map[string]any) map[string]any {
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	for k, v := range rest {
		o[k] = v
	}
	return o
}
