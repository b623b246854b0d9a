{{/*
Names, labels and the decisions every template shares. Helpers that answer yes/no return "true"
or "" (test them with `eq "true"` or `if`).
*/}}

{{- define "egress-tunnel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "egress-tunnel.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "egress-tunnel.serverName" -}}
{{- printf "%s-server" (include "egress-tunnel.fullname" .) -}}
{{- end -}}

{{- define "egress-tunnel.agentName" -}}
{{- printf "%s-agent" (include "egress-tunnel.fullname" .) -}}
{{- end -}}

{{- define "egress-tunnel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; pass (dict "ctx" $ "component" "server"). */}}
{{- define "egress-tunnel.labels" -}}
helm.sh/chart: {{ include "egress-tunnel.chart" .ctx }}
{{ include "egress-tunnel.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: egress-tunnel
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "egress-tunnel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "egress-tunnel.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "egress-tunnel.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* ---- decisions ---------------------------------------------------------------------- */}}

{{/* The servers run on the host network (DaemonSet beside the apiserver). */}}
{{- define "egress-tunnel.serverHostNetwork" -}}
{{- if eq .Values.server.kind "DaemonSet" }}true{{ end -}}
{{- end -}}

{{/* uds or tcp. */}}
{{- define "egress-tunnel.transport" -}}
{{- if .Values.server.connect.transport -}}
{{- .Values.server.connect.transport -}}
{{- else if eq .Values.server.kind "DaemonSet" -}}
uds
{{- else -}}
tcp
{{- end -}}
{{- end -}}

{{/* Agents are deployed: never in disabled mode. */}}
{{- define "egress-tunnel.agentsEnabled" -}}
{{- if and .Values.agent.enabled (ne .Values.mode "disabled") }}true{{ end -}}
{{- end -}}

{{/* The agent authentication in force, or "" without agents. */}}
{{- define "egress-tunnel.agentAuth" -}}
{{- if include "egress-tunnel.agentsEnabled" . }}{{ .Values.agentAuth.type }}{{ end -}}
{{- end -}}

{{/* The server talks to the Kubernetes API (--in-cluster): for routes, or for TokenReviews. */}}
{{- define "egress-tunnel.serverInCluster" -}}
{{- if and (ne .Values.mode "disabled") (or .Values.server.watchApi (eq (include "egress-tunnel.agentAuth" .) "serviceAccountToken")) }}true{{ end -}}
{{- end -}}

{{/* The agents talk to the Kubernetes API (--in-cluster). */}}
{{- define "egress-tunnel.agentWatchApi" -}}
{{- if include "egress-tunnel.agentsEnabled" . -}}
{{- if kindIs "bool" .Values.agent.watchApi -}}
{{- if .Values.agent.watchApi }}true{{ end -}}
{{- else if has .Values.mode (list "pod" "cluster") -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* How many servers the agents must each hold a tunnel to. */}}
{{- define "egress-tunnel.serverCount" -}}
{{- if eq .Values.server.kind "Deployment" }}{{ int .Values.server.replicas }}{{ else }}{{ int .Values.server.count }}{{ end -}}
{{- end -}}

{{/* HOST:PORT for a listen flag; IPv6 literals get brackets, $(POD_IP) is left as it is. */}}
{{- define "egress-tunnel.hostPort" -}}
{{- $host := index . 0 -}}
{{- $port := index . 1 -}}
{{- if and (contains ":" $host) (not (hasPrefix "[" $host)) -}}
{{- printf "[%s]:%v" $host $port -}}
{{- else -}}
{{- printf "%s:%v" $host $port -}}
{{- end -}}
{{- end -}}

{{/* The admin bind address; pass (dict "ctx" $ "admin" .Values.server.admin "hostNetwork" bool). */}}
{{- define "egress-tunnel.adminAddress" -}}
{{- if .admin.address -}}
{{- .admin.address -}}
{{- else if not .hostNetwork -}}
0.0.0.0
{{- else if .ctx.Values.metrics.serviceMonitor.enabled -}}
$(POD_IP)
{{- else -}}
127.0.0.1
{{- end -}}
{{- end -}}

{{/* The host a probe must name for an admin address: none for wildcard and pod-IP binds. */}}
{{- define "egress-tunnel.probeHost" -}}
{{- if not (has . (list "0.0.0.0" "::" "[::]" "$(POD_IP)")) -}}
{{- trimPrefix "[" . | trimSuffix "]" -}}
{{- end -}}
{{- end -}}

{{- define "egress-tunnel.agentServerURL" -}}
{{- if .Values.agent.serverURL -}}
{{- .Values.agent.serverURL -}}
{{- else -}}
{{- printf "%s://%s.%s.svc.%s:%v" (ternary "wss" "ws" .Values.tls.enabled) (include "egress-tunnel.serverName" .) .Release.Namespace .Values.clusterDomain .Values.server.agentListener.port -}}
{{- end -}}
{{- end -}}

{{- define "egress-tunnel.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "egress-tunnel.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/* The key of the TLS Secret that holds the CONNECT clients' CA. */}}
{{- define "egress-tunnel.clientCAKey" -}}
{{- if .Values.tls.clientCAKey -}}
{{- .Values.tls.clientCAKey -}}
{{- else if .Values.tls.clientCA -}}
client-ca.crt
{{- else -}}
ca.crt
{{- end -}}
{{- end -}}

{{- define "egress-tunnel.tokenSecretName" -}}
{{- default (printf "%s-agent-token" (include "egress-tunnel.fullname" .)) .Values.agentAuth.token.existingSecret -}}
{{- end -}}

{{/* Paths inside the containers. */}}
{{- define "egress-tunnel.configDir" -}}/etc/egress-tunnel/config{{- end -}}
{{- define "egress-tunnel.tlsDir" -}}/etc/egress-tunnel/tls{{- end -}}
{{- define "egress-tunnel.tokenDir" -}}/var/run/secrets/egress-tunnel{{- end -}}
{{- define "egress-tunnel.agentCertDir" -}}/etc/egress-tunnel/agent-certs{{- end -}}

{{/* Flags the chart sets itself; extraConfig may not name them. */}}
{{- define "egress-tunnel.reservedFlags" -}}
{{- list "config" "node-name" "node-ip" "admin-listen" "cert" "key" | toJson -}}
{{- end -}}

{{/* ---- the config files ------------------------------------------------------------------ */}}

{{- define "egress-tunnel.serverConfig" -}}
{{- $v := .Values -}}
{{- $transport := include "egress-tunnel.transport" . -}}
{{- $hostNetwork := include "egress-tunnel.serverHostNetwork" . -}}
{{- $auth := include "egress-tunnel.agentAuth" . -}}
{{- $c := dict "mode" $v.mode -}}
{{- $_ := set $c "log-format" $v.logging.format -}}
{{- $_ := set $c "log-level" $v.logging.level -}}
{{- $_ := set $c "server-count" (int (include "egress-tunnel.serverCount" .)) -}}
{{- $_ := set $c "grace-period" $v.server.gracePeriod -}}
{{- $_ := set $c "ready-min-agents" (int $v.server.readyMinAgents) -}}
{{- $_ := set $c "default-route" $v.server.defaultRoute -}}
{{- if eq $transport "uds" -}}
{{- $_ := set $c "connect-listen" "" -}}
{{- $_ := set $c "uds" (printf "%s/%s" $v.server.connect.socketDir $v.server.connect.socketName) -}}
{{- with $v.server.connect.socketGroup }}{{ $_ := set $c "uds-group" (toString .) }}{{ end -}}
{{- else -}}
{{- $addr := default (ternary "127.0.0.1" "0.0.0.0" (eq $hostNetwork "true")) $v.server.connect.address -}}
{{- $_ := set $c "connect-listen" (include "egress-tunnel.hostPort" (list $addr $v.server.connect.port)) -}}
{{- if $v.tls.enabled -}}
{{- $_ := set $c "tls-cert" (printf "%s/server.crt" (include "egress-tunnel.tlsDir" .)) -}}
{{- $_ := set $c "tls-key" (printf "%s/server.key" (include "egress-tunnel.tlsDir" .)) -}}
{{- $_ := set $c "client-ca" (printf "%s/%s" (include "egress-tunnel.tlsDir" .) (include "egress-tunnel.clientCAKey" .)) -}}
{{- with $v.tls.clientAllowedNames }}{{ $_ := set $c "client-allowed-names" (join "," .) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if $auth -}}
{{- $_ := set $c "agent-listen" (include "egress-tunnel.hostPort" (list $v.server.agentListener.address $v.server.agentListener.port)) -}}
{{- if $v.tls.enabled -}}
{{- $_ := set $c "agent-tls-cert" (printf "%s/server.crt" (include "egress-tunnel.tlsDir" .)) -}}
{{- $_ := set $c "agent-tls-key" (printf "%s/server.key" (include "egress-tunnel.tlsDir" .)) -}}
{{- end -}}
{{- else -}}
{{- /* no agents: keep the unused agent listener off the network */ -}}
{{- $_ := set $c "agent-listen" (include "egress-tunnel.hostPort" (list "127.0.0.1" $v.server.agentListener.port)) -}}
{{- end -}}
{{- if include "egress-tunnel.serverInCluster" . -}}
{{- $_ := set $c "in-cluster" true -}}
{{- end -}}
{{- if eq $auth "serviceAccountToken" -}}
{{- $_ := set $c "authentication-audience" (list $v.agentAuth.serviceAccountToken.audience) -}}
{{- if $v.agentAuth.serviceAccountToken.restrictToServiceAccount -}}
{{- $_ := set $c "agent-namespace" .Release.Namespace -}}
{{- $_ := set $c "agent-service-account" (include "egress-tunnel.agentName" .) -}}
{{- end -}}
{{- else if eq $auth "token" -}}
{{- $_ := set $c "agent-token-file" (printf "%s/tokens" (include "egress-tunnel.tokenDir" .)) -}}
{{- else if eq $auth "certificate" -}}
{{- $_ := set $c "agent-client-ca" (printf "%s/ca.crt" (include "egress-tunnel.tlsDir" .)) -}}
{{- end -}}
{{- $reserved := include "egress-tunnel.reservedFlags" . | fromJsonArray -}}
{{- range $k, $val := $v.server.extraConfig -}}
{{- if or (hasKey $c $k) (has $k $reserved) -}}
{{- fail (printf "server.extraConfig.%s: the chart sets this flag itself; use the chart's value for it (values.yaml)" $k) -}}
{{- end -}}
{{- $_ := set $c $k $val -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{- define "egress-tunnel.agentConfig" -}}
{{- $v := .Values -}}
{{- $auth := include "egress-tunnel.agentAuth" . -}}
{{- $watch := include "egress-tunnel.agentWatchApi" . -}}
{{- $c := dict "mode" $v.mode -}}
{{- $_ := set $c "log-format" $v.logging.format -}}
{{- $_ := set $c "log-level" $v.logging.level -}}
{{- $_ := set $c "server" (list (include "egress-tunnel.agentServerURL" .)) -}}
{{- $_ := set $c "kubelet-port" (int $v.agent.kubeletPort) -}}
{{- $_ := set $c "grace-period" $v.agent.gracePeriod -}}
{{- if $watch -}}
{{- $_ := set $c "in-cluster" true -}}
{{- with $v.agent.clusterCIDRs }}{{ $_ := set $c "cluster-cidr" . }}{{ end -}}
{{- end -}}
{{- with $v.agent.allow }}{{ $_ := set $c "allow" . }}{{ end -}}
{{- if $v.agent.defaultRoute }}{{ $_ := set $c "default-route" true }}{{ end -}}
{{- with $v.agent.serveCIDRs }}{{ $_ := set $c "serve-cidr" . }}{{ end -}}
{{- with $v.agent.serveHosts }}{{ $_ := set $c "serve-host" . }}{{ end -}}
{{- if $v.tls.enabled -}}
{{- $_ := set $c "ca-cert" (printf "%s/ca.crt" (include "egress-tunnel.tlsDir" .)) -}}
{{- end -}}
{{- if eq $auth "serviceAccountToken" -}}
{{- $_ := set $c "token-file" (printf "%s/token" (include "egress-tunnel.tokenDir" .)) -}}
{{- else if eq $auth "token" -}}
{{- $_ := set $c "token-file" (printf "%s/token" (include "egress-tunnel.tokenDir" .)) -}}
{{- end -}}
{{- $reserved := include "egress-tunnel.reservedFlags" . | fromJsonArray -}}
{{- range $k, $val := $v.agent.extraConfig -}}
{{- if or (hasKey $c $k) (has $k $reserved) -}}
{{- fail (printf "agent.extraConfig.%s: the chart sets this flag itself; use the chart's value for it (values.yaml)" $k) -}}
{{- end -}}
{{- $_ := set $c $k $val -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* ---- checks of value combinations that cannot work --------------------------------------- */}}

{{- define "egress-tunnel.validate" -}}
{{- $v := .Values -}}
{{- $transport := include "egress-tunnel.transport" . -}}
{{- $auth := include "egress-tunnel.agentAuth" . -}}
{{- if and (eq $transport "uds") (eq $v.server.kind "Deployment") -}}
{{- fail "server.connect.transport uds needs server.kind DaemonSet: the apiserver must share the socket's host directory" -}}
{{- end -}}
{{- if and (eq $v.server.connect.apiserverProtocol "GRPC") (ne $transport "uds") -}}
{{- fail "server.connect.apiserverProtocol GRPC needs server.connect.transport uds: the kube-apiserver speaks GRPC only over a Unix socket" -}}
{{- end -}}
{{- if and (eq $transport "tcp") (not $v.tls.enabled) -}}
{{- fail "server.connect.transport tcp needs tls.enabled: the kube-apiserver always uses TLS with a client certificate over TCP" -}}
{{- end -}}
{{- if and $v.tls.enabled (not $v.tls.existingSecret) (not (and $v.tls.ca $v.tls.cert $v.tls.key)) -}}
{{- fail "tls.enabled needs tls.existingSecret, or tls.ca, tls.cert and tls.key (--set-file tls.ca=DIR/ca.crt ...; `tunnel-server certs` writes them)" -}}
{{- end -}}
{{- if and (eq $auth "certificate") (not $v.tls.enabled) -}}
{{- fail "agentAuth.type certificate needs tls.enabled: client certificates are checked on the wss:// agent listener" -}}
{{- end -}}
{{- if and (eq $auth "certificate") (not $v.agentAuth.certificate.existingSecret) -}}
{{- fail "agentAuth.type certificate needs agentAuth.certificate.existingSecret (a Secret with agent-NODE.crt and agent-NODE.key for every node)" -}}
{{- end -}}
{{- if and (eq $auth "serviceAccountToken") (not $v.server.watchApi) -}}
{{- fail "agentAuth.type serviceAccountToken needs server.watchApi: TokenReviews go to the API, and a server that talks to the API takes its routes from it; choose token or certificate auth to route from agent hellos" -}}
{{- end -}}
{{- if and (eq $auth "token") $v.agentAuth.token.value (lt (len $v.agentAuth.token.value) 16) -}}
{{- fail "agentAuth.token.value must be 16 characters or more" -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (ne $v.server.kind "Deployment") -}}
{{- fail "networkPolicy.enabled needs server.kind Deployment: NetworkPolicies do not apply to host-network pods" -}}
{{- end -}}
{{- if and $v.agent.clusterCIDRs (not (include "egress-tunnel.agentWatchApi" .)) -}}
{{- fail "agent.clusterCIDRs needs agent.watchApi (--cluster-cidr needs --in-cluster)" -}}
{{- end -}}
{{- if and (ne $v.server.kind "DaemonSet") (has (include "egress-tunnel.adminAddress" (dict "ctx" . "admin" $v.server.admin "hostNetwork" false)) (list "127.0.0.1" "::1" "[::1]" "localhost")) -}}
{{- fail "server.admin.address: a loopback address in the pod network is out of the kubelet's reach; use 0.0.0.0 or $(POD_IP)" -}}
{{- end -}}
{{- if $v.metrics.serviceMonitor.enabled -}}
{{- $sa := include "egress-tunnel.adminAddress" (dict "ctx" . "admin" $v.server.admin "hostNetwork" (eq (include "egress-tunnel.serverHostNetwork" .) "true")) -}}
{{- $aa := include "egress-tunnel.adminAddress" (dict "ctx" . "admin" $v.agent.admin "hostNetwork" true) -}}
{{- if or (has $sa (list "127.0.0.1" "::1" "[::1]" "localhost")) (has $aa (list "127.0.0.1" "::1" "[::1]" "localhost")) -}}
{{- fail "metrics.serviceMonitor.enabled needs admin listeners Prometheus can reach: leave server.admin.address and agent.admin.address empty, or set them to $(POD_IP) or 0.0.0.0" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.server.kind "DaemonSet") (lt (int $v.server.count) 1) -}}
{{- fail "server.count must be at least 1 (the number of control-plane nodes that run a server)" -}}
{{- end -}}
{{- end -}}
