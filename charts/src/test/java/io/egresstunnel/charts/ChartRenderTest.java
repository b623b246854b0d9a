package io.egresstunnel.charts;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code helm lint} and {@code helm template} of charts/egress-tunnel for every mode, agent
 * authentication and server kind, and the main toggles; each render goes through {@link
 * ChartChecks}. Cases that cannot work must fail to render, with a message that says why.
 */
class ChartRenderTest {
  static final List<String> MODES = List.of("disabled", "agent", "pod", "cluster");
  static final List<String> AUTHS = List.of("serviceAccountToken", "token", "certificate");

  /** Server placements: kind, transport, TLS. */
  enum Setup {
    DAEMONSET_UDS("DaemonSet", "", false),
    DAEMONSET_UDS_TLS("DaemonSet", "", true),
    DAEMONSET_TCP("DaemonSet", "tcp", true),
    DEPLOYMENT("Deployment", "", true);

    final String kind;
    final String transport;
    final boolean tls;

    Setup(String kind, String transport, boolean tls) {
      this.kind = kind;
      this.transport = transport;
      this.tls = tls;
    }
  }

  /** Fake PEM texts: the chart only moves them into a Secret. */
  static Values withTls(Values v) {
    return v.with("tls.enabled", true)
        .with("tls.ca", "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n")
        .with("tls.cert", "-----BEGIN CERTIFICATE-----\nSERVER\n-----END CERTIFICATE-----\n")
        .with("tls.key", "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n");
  }

  static Values base(String mode, String auth, Setup setup) {
    Values v = Values.defaults().with("mode", mode).with("agentAuth.type", auth);
    v = v.with("server.kind", setup.kind);
    if (!setup.transport.isEmpty()) {
      v = v.with("server.connect.transport", setup.transport);
    }
    if (setup.tls) {
      v = withTls(v);
    }
    if (auth.equals("token")) {
      v = v.with("agentAuth.token.value", "0123456789abcdef0123456789abcdef");
    }
    if (auth.equals("certificate")) {
      v = v.with("agentAuth.certificate.existingSecret", "egress-tunnel-agent-certs");
    }
    return v;
  }

  /** Every mode x agent authentication x server placement that can work. */
  static Stream<ChartCase> matrix() {
    List<ChartCase> cases = new ArrayList<>();
    for (String mode : MODES) {
      for (String auth : AUTHS) {
        for (Setup setup : Setup.values()) {
          if (auth.equals("certificate") && !setup.tls && !mode.equals("disabled")) {
            continue; // needs TLS; the failure is checked below
          }
          cases.add(ChartCase.of(mode + "/" + auth + "/" + setup, base(mode, auth, setup)));
        }
      }
    }
    return cases.stream();
  }

  /** The toggles that change what is rendered, on top of a few base cases. */
  static Stream<ChartCase> toggles() {
    Values daemonSet = base("cluster", "serviceAccountToken", Setup.DAEMONSET_UDS);
    Values deployment = base("cluster", "serviceAccountToken", Setup.DEPLOYMENT);
    return Stream.of(
        ChartCase.of("defaults", Values.defaults()),
        ChartCase.of("serviceMonitor", daemonSet.with("metrics.serviceMonitor.enabled", true)),
        ChartCase.of(
            "serviceMonitor/deployment", deployment.with("metrics.serviceMonitor.enabled", true)),
        ChartCase.of(
            "serviceMonitor/disabled",
            base("disabled", "token", Setup.DAEMONSET_UDS)
                .with("metrics.serviceMonitor.enabled", true)),
        ChartCase.of(
            "serviceMonitor/admin-all-interfaces",
            daemonSet
                .with("metrics.serviceMonitor.enabled", true)
                .with("server.admin.address", "0.0.0.0")
                .with("agent.admin.address", "0.0.0.0")),
        ChartCase.of("networkPolicy", deployment.with("networkPolicy.enabled", true)),
        ChartCase.of(
            "networkPolicy/admin",
            deployment
                .with("networkPolicy.enabled", true)
                .with(
                    "networkPolicy.adminFrom",
                    List.of(
                        Map.of(
                            "namespaceSelector",
                            Map.of(
                                "matchLabels",
                                Map.of("kubernetes.io/metadata.name", "monitoring")))))),
        ChartCase.of(
            "networkPolicy/disabled-mode",
            base("disabled", "token", Setup.DEPLOYMENT).with("networkPolicy.enabled", true)),
        ChartCase.of("HA/daemonset", daemonSet.with("server.count", 3)),
        ChartCase.of("HA/deployment", deployment.with("server.replicas", 3)),
        ChartCase.of("ready with agents only", daemonSet.with("server.readyMinAgents", 2)),
        ChartCase.of(
            "agent watches API in agent mode",
            base("agent", "token", Setup.DAEMONSET_UDS).with("agent.watchApi", true)),
        ChartCase.of(
            "agent without API in cluster mode",
            daemonSet.with("agent.watchApi", false).with("agent.allow", List.of("10.42.0.0/16"))),
        ChartCase.of(
            "cluster CIDRs",
            daemonSet.with("agent.clusterCIDRs", List.of("10.42.0.0/16", "fd00:42::/56"))),
        ChartCase.of(
            "routes from hellos",
            base("pod", "token", Setup.DAEMONSET_UDS).with("server.watchApi", false)),
        ChartCase.of(
            "routes from hellos/certificate",
            base("agent", "certificate", Setup.DAEMONSET_UDS_TLS).with("server.watchApi", false)),
        ChartCase.of("dual-stack node IPs", daemonSet.with("agent.hostIPs", true)),
        ChartCase.of("socket group", daemonSet.with("server.connect.socketGroup", "1001")),
        ChartCase.of(
            "no PDB", daemonSet.with("server.pdb.enabled", false).with("agent.pdb.enabled", true)),
        ChartCase.of(
            "unrestricted ServiceAccount",
            daemonSet.with("agentAuth.serviceAccountToken.restrictToServiceAccount", false)),
        ChartCase.of(
            "admin on pod IP",
            daemonSet
                .with("server.admin.address", "$(POD_IP)")
                .with("agent.admin.address", "$(POD_IP)")),
        ChartCase.of(
            "external server URL",
            base("agent", "token", Setup.DAEMONSET_UDS_TLS)
                .with("agent.serverURL", "wss://tunnel.example.com:443")),
        ChartCase.of(
            "extra flags",
            daemonSet
                .with(
                    "server.extraConfig",
                    Map.of(
                        "max-agents",
                        5000,
                        "dial-timeout",
                        "5s",
                        "tls-cipher-suites",
                        List.of("TLS_AES_128_GCM_SHA256")))
                .with(
                    "agent.extraConfig",
                    Map.of("reconnect-max", "10s", "websocket-masking", "never"))),
        ChartCase.of(
            "text logs", daemonSet.with("logging.format", "text").with("logging.level", "debug")),
        ChartCase.of(
            "no agents",
            base("agent", "token", Setup.DAEMONSET_UDS)
                .with("agent.enabled", false)
                .with("server.watchApi", false)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("matrix")
  void matrixRendersAndHolds(ChartCase c) throws Exception {
    renderAndCheck(c);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("toggles")
  void togglesRenderAndHold(ChartCase c) throws Exception {
    renderAndCheck(c);
  }

  static ChartChecks.Checked renderAndCheck(ChartCase c) throws Exception {
    Helm helm = Helm.get();
    try {
      Rendered r = Rendered.parse(helm.template(c.values()));
      return ChartChecks.check(c, r, helm.workDir());
    } catch (AssertionError e) {
      throw new AssertionError(c + ": " + e.getMessage(), e);
    }
  }

  @Test
  void lintPassesStrictlyForEachModeAndServerKind() {
    Helm helm = Helm.get();
    List<Values> sets = new ArrayList<>();
    sets.add(Values.defaults());
    for (String mode : MODES) {
      sets.add(base(mode, "token", Setup.DEPLOYMENT).with("networkPolicy.enabled", true));
      sets.add(
          base(mode, "certificate", Setup.DAEMONSET_TCP)
              .with("metrics.serviceMonitor.enabled", true));
    }
    for (Values v : sets) {
      Helm.Result r = helm.lint(v);
      assertThat(r.exit()).as("helm lint --strict %s:\n%s%s", v, r.stdout(), r.stderr()).isZero();
      assertThat(r.stdout()).contains("0 chart(s) failed");
    }
  }

  // ---- what each mode grants, spelled out -----------------------------------------------------

  @Test
  void rbacPerModeIsExactlyWhatTheProgramsNeed() {
    Helm helm = Helm.get();
    Map<String, List<String>> serverRules =
        Map.of(
            "disabled", List.of(),
            "agent", List.of("/nodes:list,watch", "authentication.k8s.io/tokenreviews:create"),
            "pod", List.of("/nodes:list,watch", "authentication.k8s.io/tokenreviews:create"),
            "cluster",
                List.of(
                    "/nodes:list,watch",
                    "/pods:list,watch",
                    "discovery.k8s.io/endpointslices:list,watch",
                    "authentication.k8s.io/tokenreviews:create"));
    Map<String, List<String>> agentRules =
        Map.of(
            "disabled", List.of(),
            "agent", List.of(),
            "pod", List.of("/nodes:list,watch", "/pods:list,watch"),
            "cluster", List.of("/nodes:list,watch", "/pods:list,watch"));
    for (String mode : MODES) {
      Rendered r =
          Rendered.parse(helm.template(base(mode, "serviceAccountToken", Setup.DAEMONSET_UDS)));
      assertThat(rules(r, ChartChecks.SERVER))
          .as("server, mode %s", mode)
          .isEqualTo(serverRules.get(mode));
      assertThat(rules(r, ChartChecks.AGENT))
          .as("agent, mode %s", mode)
          .isEqualTo(agentRules.get(mode));
    }
    // token authentication: no TokenReviews
    Rendered r = Rendered.parse(helm.template(base("cluster", "token", Setup.DAEMONSET_UDS)));
    assertThat(rules(r, ChartChecks.SERVER))
        .containsExactly(
            "/nodes:list,watch", "/pods:list,watch", "discovery.k8s.io/endpointslices:list,watch");
    // rbac.create false: none at all
    r =
        Rendered.parse(
            helm.template(
                base("cluster", "serviceAccountToken", Setup.DAEMONSET_UDS)
                    .with("rbac.create", false)));
    assertThat(r.all(ClusterRole.class)).isEmpty();
  }

  private static List<String> rules(Rendered r, String name) {
    ClusterRole role = r.find(ClusterRole.class, name);
    if (role == null) {
      return List.of();
    }
    return role.getRules().stream()
        .map(
            rule ->
                String.join(",", rule.getApiGroups())
                    + "/"
                    + String.join(",", rule.getResources())
                    + ":"
                    + String.join(",", rule.getVerbs()))
        .toList();
  }

  @Test
  void disabledModeIsAPlainProxyWithoutAgentsOrApiAccess() {
    Rendered r =
        Rendered.parse(
            Helm.get().template(base("disabled", "serviceAccountToken", Setup.DAEMONSET_UDS)));
    assertThat(r.names())
        .containsExactlyInAnyOrder(
            "ConfigMap/" + ChartChecks.SERVER,
            "ServiceAccount/" + ChartChecks.SERVER,
            "DaemonSet/" + ChartChecks.SERVER,
            "PodDisruptionBudget/" + ChartChecks.SERVER);
  }

  @Test
  void tokenSecretHoldsTheAgentsTokenAndTheServersTokenFile() {
    String token = "0123456789abcdef0123456789abcdef";
    Rendered r = Rendered.parse(Helm.get().template(base("agent", "token", Setup.DAEMONSET_UDS)));
    Secret s = r.get(Secret.class, ChartChecks.FULLNAME + "-agent-token");
    assertThat(decode(s, "token")).isEqualTo(token);
    assertThat(decode(s, "tokens")).isEqualTo(token + "\n");

    // Without a value the chart makes one (kept across upgrades through lookup in a cluster).
    Values generated =
        base("agent", "token", Setup.DAEMONSET_UDS).with("agentAuth.token.value", "");
    s =
        Rendered.parse(Helm.get().template(generated))
            .get(Secret.class, ChartChecks.FULLNAME + "-agent-token");
    assertThat(decode(s, "token")).hasSize(48).matches("[A-Za-z0-9]+");
    assertThat(decode(s, "tokens")).isEqualTo(decode(s, "token") + "\n");

    // An existing Secret is used as it is.
    r =
        Rendered.parse(
            Helm.get()
                .template(
                    base("agent", "token", Setup.DAEMONSET_UDS)
                        .with("agentAuth.token.existingSecret", "mine")));
    assertThat(r.all(Secret.class)).isEmpty();
  }

  @Test
  void tlsSecretComesFromTheValuesOrAnExistingSecret() {
    Rendered r =
        Rendered.parse(Helm.get().template(base("agent", "token", Setup.DAEMONSET_UDS_TLS)));
    Secret s = r.get(Secret.class, ChartChecks.FULLNAME + "-tls");
    assertThat(s.getData()).containsOnlyKeys("ca.crt", "server.crt", "server.key");
    assertThat(decode(s, "server.key")).contains("BEGIN PRIVATE KEY");

    Values existing =
        base("agent", "token", Setup.DAEMONSET_UDS)
            .with("tls.enabled", true)
            .with("tls.existingSecret", "egress-tunnel-certs");
    r = Rendered.parse(Helm.get().template(existing));
    assertThat(r.find(Secret.class, ChartChecks.FULLNAME + "-tls")).isNull();
    DaemonSet server = r.get(DaemonSet.class, ChartChecks.SERVER);
    assertThat(server.getSpec().getTemplate().getSpec().getVolumes())
        .anyMatch(
            v ->
                v.getSecret() != null
                    && "egress-tunnel-certs".equals(v.getSecret().getSecretName()));
  }

  @Test
  void apiserverClientsMayHaveACaOfTheirOwn() throws Exception {
    Values v =
        base("agent", "certificate", Setup.DEPLOYMENT)
            .with(
                "tls.clientCA",
                "-----BEGIN CERTIFICATE-----\nAPISERVER-CA\n-----END CERTIFICATE-----\n");
    ChartChecks.Checked checked = renderAndCheck(ChartCase.of("client CA", v));
    assertThat(checked.server().tls().clientCa().toString()).endsWith("/client-ca.crt");
    assertThat(checked.server().security().agentAuth().clientCa().toString()).endsWith("/ca.crt");
    assertThat(
            decode(
                checked.rendered().get(Secret.class, ChartChecks.FULLNAME + "-tls"),
                "client-ca.crt"))
        .contains("APISERVER-CA");

    Values existing =
        base("agent", "token", Setup.DEPLOYMENT)
            .with("tls.existingSecret", "certs")
            .with("tls.clientCAKey", "apiserver-ca.crt");
    checked = renderAndCheck(ChartCase.of("client CA key", existing));
    assertThat(checked.server().tls().clientCa().toString()).endsWith("/apiserver-ca.crt");
  }

  private static String decode(Secret s, String key) {
    return new String(Base64.getDecoder().decode(s.getData().get(key)), StandardCharsets.UTF_8);
  }

  @Test
  void aChangedConfigRollsThePods() {
    Values v = base("agent", "token", Setup.DAEMONSET_UDS);
    String before = annotation(Rendered.parse(Helm.get().template(v)));
    String after =
        annotation(Rendered.parse(Helm.get().template(v.with("server.gracePeriod", "10s"))));
    assertThat(after).isNotEqualTo(before);
  }

  private static String annotation(Rendered r) {
    return r.get(DaemonSet.class, ChartChecks.SERVER)
        .getSpec()
        .getTemplate()
        .getMetadata()
        .getAnnotations()
        .get("checksum/config");
  }

  @Test
  void serverServiceCarriesConnectOnlyForADeployment() {
    Rendered ds = Rendered.parse(Helm.get().template(base("agent", "token", Setup.DAEMONSET_TCP)));
    assertThat(ds.get(Service.class, ChartChecks.SERVER).getSpec().getPorts())
        .extracting(p -> p.getName())
        .containsExactly("agents");
    Rendered dep =
        Rendered.parse(
            Helm.get()
                .template(
                    base("agent", "token", Setup.DEPLOYMENT)
                        .with("server.service.type", "LoadBalancer")
                        .with(
                            "server.service.loadBalancerSourceRanges", List.of("203.0.113.0/24"))));
    Service svc = dep.get(Service.class, ChartChecks.SERVER);
    assertThat(svc.getSpec().getPorts())
        .extracting(p -> p.getName())
        .containsExactlyInAnyOrder("agents", "connect");
    assertThat(svc.getSpec().getType()).isEqualTo("LoadBalancer");
    assertThat(svc.getSpec().getLoadBalancerSourceRanges()).containsExactly("203.0.113.0/24");
  }

  // ---- combinations that cannot work ----------------------------------------------------------

  @Test
  void impossibleCombinationsFailWithAReason() {
    Helm helm = Helm.get();
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS)
                    .with("server.connect.transport", "tcp")))
        .contains("tcp needs tls.enabled");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DEPLOYMENT).with("tls.enabled", false)))
        .contains("tcp needs tls.enabled");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DEPLOYMENT).with("server.connect.transport", "uds")))
        .contains("uds needs server.kind DaemonSet");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DEPLOYMENT)
                    .with("server.connect.apiserverProtocol", "GRPC")))
        .contains("GRPC needs server.connect.transport uds");
    assertThat(helm.templateFailure(base("agent", "certificate", Setup.DAEMONSET_UDS)))
        .contains("certificate needs tls.enabled");
    assertThat(
            helm.templateFailure(
                base("agent", "certificate", Setup.DAEMONSET_UDS_TLS)
                    .with("agentAuth.certificate.existingSecret", "")))
        .contains("needs agentAuth.certificate.existingSecret");
    assertThat(
            helm.templateFailure(
                base("agent", "serviceAccountToken", Setup.DAEMONSET_UDS)
                    .with("server.watchApi", false)))
        .contains("serviceAccountToken needs server.watchApi");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS).with("networkPolicy.enabled", true)))
        .contains("NetworkPolicies do not apply to host-network pods");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS)
                    .with("agent.clusterCIDRs", List.of("10.42.0.0/16"))))
        .contains("--cluster-cidr needs --in-cluster");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS)
                    .with("metrics.serviceMonitor.enabled", true)
                    .with("server.admin.address", "127.0.0.1")))
        .contains("admin listeners Prometheus can reach");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DEPLOYMENT).with("server.admin.address", "127.0.0.1")))
        .contains("out of the kubelet's reach");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS).with("agentAuth.token.value", "short")))
        .contains("16 characters");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS_TLS).with("tls.key", "")))
        .contains("tls.enabled needs tls.existingSecret");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS)
                    .with("server.extraConfig", Map.of("mode", "pod"))))
        .contains("server.extraConfig.mode: the chart sets this flag itself");
    assertThat(
            helm.templateFailure(
                base("agent", "token", Setup.DAEMONSET_UDS)
                    .with("agent.extraConfig", Map.of("node-name", "x"))))
        .contains("agent.extraConfig.node-name: the chart sets this flag itself");
  }

  @Test
  void schemaRejectsUnknownKeysAndWrongValues() {
    Helm helm = Helm.get();
    assertThat(helm.templateFailure(Values.defaults().with("sever.kind", "Deployment")))
        .contains("additional properties 'sever' not allowed");
    assertThat(helm.templateFailure(Values.defaults().with("server.replica", 3)))
        .contains("additional properties 'replica' not allowed");
    assertThat(helm.templateFailure(Values.defaults().with("mode", "pods"))).contains("/mode");
    assertThat(helm.templateFailure(Values.defaults().with("server.kind", "StatefulSet")))
        .contains("/server/kind");
    assertThat(helm.templateFailure(Values.defaults().with("agentAuth.type", "password")))
        .contains("/agentAuth/type");
    assertThat(helm.templateFailure(Values.defaults().with("server.gracePeriod", "20 seconds")))
        .contains("/server/gracePeriod");
    assertThat(
            helm.templateFailure(
                Values.defaults().with("agentAuth.serviceAccountToken.expirationSeconds", 60)))
        .contains("expirationSeconds");
  }

  /** The checks themselves: a flag the programs do not have, or a wrong value, is caught. */
  @Test
  void renderedConfigWithAnUnknownFlagOrBadValueFailsTheChecks() {
    Values unknown =
        base("agent", "token", Setup.DAEMONSET_UDS)
            .with("server.extraConfig", Map.of("max-agent", 5));
    assertThatThrownBy(() -> renderAndCheck(ChartCase.of("unknown flag", unknown)))
        .hasMessageContaining("max-agent");
    Values badValue =
        base("agent", "token", Setup.DAEMONSET_UDS)
            .with("agent.extraConfig", Map.of("reconnect-max", "soon"));
    assertThatThrownBy(() -> renderAndCheck(ChartCase.of("bad value", badValue)))
        .hasMessageContaining("soon");
  }

  @Test
  void agentGetsItsNodeFromTheDownwardApi() throws Exception {
    ChartChecks.Checked checked = renderAndCheck(ChartCase.of("default", Values.defaults()));
    assertThat(checked.agent().nodeName()).isEqualTo(PodView.NODE_NAME);
    DaemonSet agent = checked.rendered().get(DaemonSet.class, ChartChecks.AGENT);
    Container ct = agent.getSpec().getTemplate().getSpec().getContainers().get(0);
    assertThat(ct.getEnv())
        .anySatisfy(
            e -> {
              assertThat(e.getName()).isEqualTo("NODE_NAME");
              assertThat(e.getValueFrom().getFieldRef().getFieldPath()).isEqualTo("spec.nodeName");
            })
        .anySatisfy(
            e -> {
              assertThat(e.getName()).isEqualTo("NODE_IP");
              assertThat(e.getValueFrom().getFieldRef().getFieldPath()).isEqualTo("status.hostIP");
            });
    // the config file leaves them to the args
    ConfigMap cm = checked.rendered().get(ConfigMap.class, ChartChecks.AGENT);
    assertThat(cm.getData().get("agent.yaml"))
        .doesNotContain("node-name")
        .doesNotContain("node-ip");
  }

  /** A control plane outside the cluster network: the agents carry what no node owns. */
  @Test
  void defaultRouteAndServedNetworksReachBothCommandLines() throws Exception {
    ChartChecks.Checked checked =
        renderAndCheck(
            ChartCase.of(
                "default route",
                Values.defaults()
                    .with("server.defaultRoute", "agents")
                    .with("agent.defaultRoute", true)
                    .with("agent.serveCIDRs", List.of("192.168.50.0/24"))
                    .with("agent.serveHosts", List.of("db.site.example"))));
    assertThat(checked.server().routing().defaultRoute().flagValue()).isEqualTo("agents");
    assertThat(checked.agent().egress().defaultRoute()).isTrue();
    assertThat(checked.agent().egress().serveCidrs()).hasSize(1);
    assertThat(checked.agent().egress().serveHosts()).containsExactly("db.site.example");
    ChartChecks.Checked plain = renderAndCheck(ChartCase.of("default", Values.defaults()));
    assertThat(plain.server().routing().defaultRoute().flagValue()).isEqualTo("auto");
    assertThat(plain.agent().egress().defaultRoute()).isFalse();
  }

  @Test
  void notesExplainTheApiserverSide() {
    Helm helm = Helm.get();
    Values v = Values.defaults();
    Helm.Result r =
        helm.run(
            List.of(
                "install",
                Helm.RELEASE,
                helm.chartDir().toString(),
                "--dry-run=client",
                "--namespace",
                Helm.NAMESPACE,
                "--values",
                v.writeTo(helm.workDir()).toString()));
    assertThat(r.exit()).as(r.stderr()).isZero();
    assertThat(r.stdout())
        .contains("kind: EgressSelectorConfiguration")
        .contains("udsName: /run/egress-tunnel/connect.sock")
        .contains("server.count is 1");
  }
}
