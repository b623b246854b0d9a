package io.egresstunnel.charts;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.RenderedAgentCommand;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.RenderedServerCommand;
import io.egresstunnel.server.ServerConfig;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerPort;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HTTPGetAction;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.SecurityContext;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.ServicePort;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicyPort;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBinding;
import io.fabric8.kubernetes.api.model.rbac.PolicyRule;
import io.fabric8.kubernetes.api.model.rbac.Role;
import io.fabric8.kubernetes.api.model.rbac.RoleBinding;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.yaml.snakeyaml.Yaml;

/**
 * The facts every render must satisfy, checked against the objects and against what the real
 * command lines make of the rendered config files and args. {@link #check} returns what the
 * programs were configured with, for tests that look further.
 */
final class ChartChecks {
  static final String FULLNAME = Helm.RELEASE + "-egress-tunnel";
  static final String SERVER = FULLNAME + "-server";
  static final String AGENT = FULLNAME + "-agent";

  static final Set<String> KINDS =
      Set.of(
          "ConfigMap",
          "Secret",
          "ServiceAccount",
          "Service",
          "DaemonSet",
          "Deployment",
          "ClusterRole",
          "ClusterRoleBinding",
          "PodDisruptionBudget",
          "NetworkPolicy",
          "ServiceMonitor");

  /** Admin paths the programs serve (AdminEndpoints, TunnelAgent). */
  static final String HEALTHZ = "/healthz";

  static final String READYZ = "/readyz";

  private static final Set<String> SERVER_KEYS =
      CommandKeys.settings(RenderedServerCommand.commandLine());
  private static final Set<String> SERVER_PATH_KEYS =
      CommandKeys.paths(RenderedServerCommand.commandLine());
  private static final Set<String> AGENT_KEYS =
      CommandKeys.settings(RenderedAgentCommand.commandLine());
  private static final Set<String> AGENT_PATH_KEYS =
      CommandKeys.paths(RenderedAgentCommand.commandLine());

  private ChartChecks() {}

  /** What the rendered containers configure, as the programs parse it. */
  record Checked(
      Rendered rendered, ServerConfig server, List<String> serverArgs, AgentConfig agent) {}

  static Checked check(ChartCase c, Rendered r, Path workDir) throws Exception {
    assertThat(r.objects()).as("objects").isNotEmpty();
    Set<String> seen = new HashSet<>();
    for (HasMetadata o : r.objects()) {
      assertThat(KINDS).as("kinds the chart renders").contains(o.getKind());
      assertThat(seen.add(o.getKind() + "/" + o.getMetadata().getName()))
          .as("%s/%s rendered once", o.getKind(), o.getMetadata().getName())
          .isTrue();
      if (!o.getKind().startsWith("Cluster")) {
        assertThat(o.getMetadata().getNamespace())
            .as("namespace of %s", o.getMetadata().getName())
            .isEqualTo(Helm.NAMESPACE);
      }
    }
    assertThat(r.all(Role.class)).as("Roles").isEmpty();
    assertThat(r.all(RoleBinding.class)).as("RoleBindings").isEmpty();

    Checked serverSide = checkServer(c, r, workDir);
    AgentConfig agent = c.agents() ? checkAgent(c, r, serverSide.server(), workDir) : null;
    if (!c.agents()) {
      assertThat(r.find(DaemonSet.class, AGENT)).as("agents in mode %s", c.mode()).isNull();
      assertThat(r.find(ClusterRole.class, AGENT)).as("agent ClusterRole").isNull();
      assertThat(r.find(ServiceAccount.class, AGENT)).as("agent ServiceAccount").isNull();
    }
    checkServices(r);
    checkPdb(c, r);
    checkServiceMonitors(c, r);
    checkNetworkPolicy(c, r);
    for (ClusterRole role : r.all(ClusterRole.class)) {
      assertThat(role.getMetadata().getName()).isIn(SERVER, AGENT);
    }
    return new Checked(r, serverSide.server(), serverSide.serverArgs(), agent);
  }

  // ---- server --------------------------------------------------------------------------------

  private static Checked checkServer(ChartCase c, Rendered r, Path workDir) throws Exception {
    PodView pod;
    if (c.serverKind().equals("DaemonSet")) {
      assertThat(r.find(Deployment.class, SERVER)).as("server Deployment").isNull();
      pod = new PodView(r.get(DaemonSet.class, SERVER).getSpec().getTemplate(), r);
    } else {
      assertThat(r.find(DaemonSet.class, SERVER)).as("server DaemonSet").isNull();
      Deployment d = r.get(Deployment.class, SERVER);
      assertThat(d.getSpec().getReplicas()).as("replicas").isEqualTo(c.serverCount());
      pod = new PodView(d.getSpec().getTemplate(), r);
    }
    assertThat(pod.hostNetwork()).as("server hostNetwork").isEqualTo(c.serverHostNetwork());
    Container ct = pod.container("tunnel-server");
    assertThat(ct.getCommand())
        .containsExactly("java", "-jar", "/opt/egress-tunnel/tunnel-server.jar");
    checkSecurity(pod, c.transport().equals("uds"));

    ParsedConfig pc = parseConfig(pod, ct, SERVER_KEYS, workDir);
    checkPaths(pod, ct, pc, SERVER_PATH_KEYS, r);
    RenderedServerCommand.Parsed parsed = RenderedServerCommand.parse(pc.args(), pod.env(ct));
    assertThat(parsed.warnings()).as("tunnel-server setting warnings").isEmpty();
    ServerConfig s = parsed.config();

    assertThat(s.mode()).isEqualTo(EgressMode.parse(c.mode()));
    assertThat(s.serverCount()).as("--server-count").isEqualTo(c.serverCount());
    assertThat(s.kubernetes() != null).as("server --in-cluster").isEqualTo(c.serverInCluster());
    if (s.kubernetes() != null) {
      assertThat(s.kubernetes().ownNode()).as("server --node-name").isEqualTo(PodView.NODE_NAME);
    }
    if (c.transport().equals("uds")) {
      assertThat(s.connectListen()).as("TCP CONNECT listener with a Unix socket").isNull();
      assertThat(s.udsPath()).isNotNull();
      VolumeMount m = pod.mountOf(ct, s.udsPath().toString());
      assertThat(m).as("socket directory mounted").isNotNull();
      Volume v = pod.volume(m.getName());
      assertThat(v.getHostPath()).as("socket directory is a hostPath").isNotNull();
      assertThat(v.getHostPath().getPath()).isEqualTo(m.getMountPath());
      assertThat(s.udsPath().getParent().toString()).isEqualTo(m.getMountPath());
    } else {
      assertThat(s.udsPath()).isNull();
      assertThat(s.tls()).as("the apiserver speaks TLS over TCP").isNotNull();
      assertThat(s.tls().clientCa()).as("client certificates required").isNotNull();
      if (c.serverHostNetwork()) {
        assertThat(s.connectListen().getAddress().isLoopbackAddress())
            .as("CONNECT on the host network stays on loopback")
            .isTrue();
      }
      assertThat(containerPort(ct, "connect")).isEqualTo(s.connectListen().getPort());
    }
    assertThat(s.agentTls() != null).as("wss").isEqualTo(c.tls() && c.agents());
    if (c.agents()) {
      assertThat(containerPort(ct, "agents")).isEqualTo(s.agentListen().getPort());
      // Agents reach servers through the Service: one that waits for agents must be listed.
      assertThat(
              Boolean.TRUE.equals(
                  r.get(Service.class, SERVER).getSpec().getPublishNotReadyAddresses()))
          .as("Service lists servers that wait for agents")
          .isEqualTo(s.limits().readyMinAgents() > 0);
    } else {
      assertThat(s.agentListen().getAddress().isLoopbackAddress())
          .as("unused agent listener kept on loopback")
          .isTrue();
    }
    ServerConfig.AgentAuth auth = s.security().agentAuth();
    String expectedAuth = c.auth();
    assertThat(auth.tokenFile() != null)
        .as("--agent-token-file")
        .isEqualTo("token".equals(expectedAuth));
    assertThat(auth.clientCa() != null)
        .as("--agent-client-ca")
        .isEqualTo("certificate".equals(expectedAuth));
    assertThat(auth.tokenReview() != null)
        .as("--authentication-audience")
        .isEqualTo("serviceAccountToken".equals(expectedAuth));
    if (auth.tokenReview() != null
        && c.values().getBoolean("agentAuth.serviceAccountToken.restrictToServiceAccount", true)) {
      assertThat(auth.tokenReview().namespace()).isEqualTo(Helm.NAMESPACE);
      assertThat(auth.tokenReview().serviceAccount()).isEqualTo(AGENT);
    }
    if (s.security().udsGroup() != null) {
      // Only a member of the group may hand the socket to it.
      assertThat(pod.spec().getSecurityContext().getSupplementalGroups())
          .as("supplementalGroups hold --uds-group")
          .contains(Long.parseLong(s.security().udsGroup()));
    }
    checkProbes(pod, ct, s.adminListen(), "server");
    checkGrace(pod, s.limits().gracePeriod(), "server");

    // RBAC: exactly what this configuration makes the server do.
    Set<String> expected = new TreeSet<>();
    if (s.kubernetes() != null) {
      expected.addAll(rules("", "nodes", "list", "watch"));
      if (s.mode() == EgressMode.CLUSTER) {
        expected.addAll(rules("", "pods", "list", "watch"));
        expected.addAll(rules("discovery.k8s.io", "endpointslices", "list", "watch"));
      }
    }
    if (auth.tokenReview() != null) {
      expected.addAll(rules("authentication.k8s.io", "tokenreviews", "create"));
    }
    checkRbac(r, pod, SERVER, expected, s.kubernetes() != null || auth.tokenReview() != null);
    return new Checked(r, s, pc.args(), null);
  }

  // ---- agent ---------------------------------------------------------------------------------

  private static AgentConfig checkAgent(ChartCase c, Rendered r, ServerConfig server, Path workDir)
      throws Exception {
    PodView pod = new PodView(r.get(DaemonSet.class, AGENT).getSpec().getTemplate(), r);
    assertThat(pod.hostNetwork()).as("agent hostNetwork").isTrue();
    Container ct = pod.container("tunnel-agent");
    assertThat(ct.getCommand())
        .containsExactly("java", "-jar", "/opt/egress-tunnel/tunnel-agent.jar");
    checkSecurity(pod, false);

    // The node's name and address from the downward API, passed as flags.
    Map<String, String> fieldRefs = new LinkedHashMap<>();
    ct.getEnv().stream()
        .filter(e -> e.getValueFrom() != null && e.getValueFrom().getFieldRef() != null)
        .forEach(e -> fieldRefs.put(e.getName(), e.getValueFrom().getFieldRef().getFieldPath()));
    assertThat(fieldRefs).containsEntry("NODE_NAME", "spec.nodeName");
    assertThat(fieldRefs)
        .containsEntry("NODE_IP", c.hostIPs() ? "status.hostIPs" : "status.hostIP");
    assertThat(ct.getArgs()).contains("--node-name=$(NODE_NAME)", "--node-ip=$(NODE_IP)");

    ParsedConfig pc = parseConfig(pod, ct, AGENT_KEYS, workDir);
    checkPaths(pod, ct, pc, AGENT_PATH_KEYS, r);
    RenderedAgentCommand.Parsed parsed = RenderedAgentCommand.parse(pc.args(), pod.env(ct));
    assertThat(parsed.warnings()).as("tunnel-agent setting warnings").isEmpty();
    AgentConfig a = parsed.config();

    assertThat(a.nodeName()).isEqualTo(PodView.NODE_NAME);
    List<InetAddress> expectedIps = new ArrayList<>();
    expectedIps.add(InetAddress.getByName(PodView.NODE_IP));
    if (c.hostIPs()) {
      expectedIps.add(InetAddress.getByName("fd00::11"));
    }
    assertThat(a.nodeAddresses()).as("--node-ip").containsExactlyElementsOf(expectedIps);
    assertThat(a.mode()).as("agent mode = server mode").isEqualTo(server.mode());
    assertThat(a.kubernetes() != null).as("agent --in-cluster").isEqualTo(c.agentWatchApi());

    // It dials the server Service, with the scheme the agent listener serves.
    assertThat(a.servers()).hasSize(1);
    java.net.URI url = a.servers().get(0);
    assertThat(url.getScheme()).isEqualTo(server.agentTls() != null ? "wss" : "ws");
    if (c.values().getString("agent.serverURL", "").isEmpty()) {
      assertThat(url.getHost()).isEqualTo(SERVER + "." + Helm.NAMESPACE + ".svc.cluster.local");
      ServicePort port = servicePort(r.get(Service.class, SERVER), "agents");
      assertThat(url.getPort()).isEqualTo(port.getPort());
    }
    assertThat(a.caCert() != null).as("--ca-cert").isEqualTo(server.agentTls() != null);

    // Credentials, and the server side that accepts them.
    AgentConfig.Credentials cred = a.credentials();
    switch (c.auth()) {
      case "serviceAccountToken" -> {
        Volume v = pod.volume(pod.mountOf(ct, cred.tokenFile().toString()).getName());
        assertThat(v.getProjected()).as("projected token volume").isNotNull();
        var source = v.getProjected().getSources().get(0).getServiceAccountToken();
        assertThat(source.getPath())
            .isEqualTo(
                PodView.relative(
                    pod.mountOf(ct, cred.tokenFile().toString()), cred.tokenFile().toString()));
        assertThat(server.security().agentAuth().tokenReview().audiences())
            .as("the server accepts the token's audience")
            .containsExactly(source.getAudience());
        assertThat(pod.spec().getServiceAccountName()).isEqualTo(AGENT);
        assertThat(cred.cert()).isNull();
      }
      case "token" -> {
        assertThat(cred.tokenFile()).isNotNull();
        assertThat(cred.cert()).isNull();
      }
      case "certificate" -> {
        assertThat(cred.cert().toString()).endsWith("/agent-" + PodView.NODE_NAME + ".crt");
        assertThat(cred.key().toString()).endsWith("/agent-" + PodView.NODE_NAME + ".key");
        assertThat(server.security().agentAuth().clientCa()).isNotNull();
        assertThat(cred.tokenFile()).isNull();
      }
      default -> throw new AssertionError(c.auth());
    }
    checkProbes(pod, ct, a.adminListen(), "agent");
    checkGrace(pod, a.limits().gracePeriod(), "agent");

    Set<String> expected = new TreeSet<>();
    if (a.kubernetes() != null) {
      expected.addAll(rules("", "nodes", "list", "watch"));
      if (a.mode() == EgressMode.POD || a.mode() == EgressMode.CLUSTER) {
        expected.addAll(rules("", "pods", "list", "watch"));
      }
    }
    checkRbac(r, pod, AGENT, expected, a.kubernetes() != null);
    return a;
  }

  // ---- shared checks -------------------------------------------------------------------------

  /** The config file and args of a container, as the command will read them. */
  record ParsedConfig(Map<String, Object> file, List<String> args) {}

  /**
   * Reads the config file the container names, checks that its keys are real flags and that no
   * setting is given both there and as an arg, and returns args that point at a local copy.
   */
  static ParsedConfig parseConfig(PodView pod, Container ct, Set<String> keys, Path workDir) {
    List<String> args = pod.expandedArgs(ct);
    List<String> out = new ArrayList<>();
    Map<String, Object> file = null;
    Set<String> argKeys = new TreeSet<>();
    for (String arg : args) {
      assertThat(arg).as("%s: args are --flag=value", ct.getName()).matches("--[a-z][a-z0-9-]*=.*");
      String key = arg.substring(2, arg.indexOf('='));
      String value = arg.substring(arg.indexOf('=') + 1);
      assertThat(keys).as("%s: flag --%s exists", ct.getName(), key).contains(key);
      argKeys.add(key);
      if (key.equals("config")) {
        Path local = pod.configMapFile(ct, value, workDir.resolve("config-files"));
        Object loaded;
        try {
          loaded = new Yaml().load(java.nio.file.Files.readString(local));
        } catch (java.io.IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
        assertThat(loaded).as("%s: config file is a mapping", value).isInstanceOf(Map.class);
        @SuppressWarnings("unchecked")
        Map<String, Object> m = (Map<String, Object>) loaded;
        file = m;
        out.add("--config=" + local);
      } else {
        out.add(arg);
      }
    }
    assertThat(file).as("%s: a --config file", ct.getName()).isNotNull();
    assertThat(keys).as("%s: config file keys are flags", ct.getName()).containsAll(file.keySet());
    Set<String> both = new TreeSet<>(file.keySet());
    both.retainAll(argKeys);
    assertThat(both)
        .as("%s: settings in both the config file and the args", ct.getName())
        .isEmpty();
    return new ParsedConfig(file, out);
  }

  /** Every file or directory setting lies on a volume that provides it. */
  private static void checkPaths(
      PodView pod, Container ct, ParsedConfig pc, Set<String> pathKeys, Rendered r) {
    Map<String, String> paths = new LinkedHashMap<>();
    pc.file()
        .forEach(
            (k, v) -> {
              if (pathKeys.contains(k) && v != null && !String.valueOf(v).isEmpty()) {
                paths.put(k, String.valueOf(v));
              }
            });
    for (String arg : pod.expandedArgs(ct)) {
      String key = arg.substring(2, arg.indexOf('='));
      if (pathKeys.contains(key) && !key.equals("config")) {
        paths.put(key, arg.substring(arg.indexOf('=') + 1));
      }
    }
    for (Map.Entry<String, String> e : paths.entrySet()) {
      String file = e.getValue();
      VolumeMount m = pod.mountOf(ct, file);
      assertThat(m).as("%s: %s=%s lies on a volume", ct.getName(), e.getKey(), file).isNotNull();
      Volume v = pod.volume(m.getName());
      String name = PodView.relative(m, file);
      if (v.getSecret() != null) {
        String secretName = v.getSecret().getSecretName();
        Set<String> keys = new TreeSet<>();
        if (v.getSecret().getItems() != null && !v.getSecret().getItems().isEmpty()) {
          v.getSecret().getItems().forEach(i -> keys.add(i.getPath()));
          assertThat(keys)
              .as("%s: Secret volume %s holds %s", ct.getName(), m.getName(), name)
              .contains(name);
        }
        Secret secret = r.find(Secret.class, secretName);
        if (secret != null) {
          Set<String> dataKeys = new TreeSet<>();
          if (secret.getData() != null) {
            dataKeys.addAll(secret.getData().keySet());
          }
          if (secret.getStringData() != null) {
            dataKeys.addAll(secret.getStringData().keySet());
          }
          String key =
              v.getSecret().getItems() == null || v.getSecret().getItems().isEmpty()
                  ? name
                  : v.getSecret().getItems().stream()
                      .filter(i -> i.getPath().equals(name))
                      .findFirst()
                      .orElseThrow()
                      .getKey();
          assertThat(dataKeys).as("Secret %s", secretName).contains(key);
        }
      } else if (v.getProjected() != null) {
        assertThat(v.getProjected().getSources())
            .as("%s: projected volume %s holds %s", ct.getName(), m.getName(), name)
            .anyMatch(
                s ->
                    s.getServiceAccountToken() != null
                        && name.equals(s.getServiceAccountToken().getPath()));
      } else if (v.getConfigMap() != null) {
        assertThat(
                r.get(io.fabric8.kubernetes.api.model.ConfigMap.class, v.getConfigMap().getName())
                    .getData())
            .containsKey(name);
      } else {
        assertThat(v.getHostPath()).as("%s: volume of %s", ct.getName(), file).isNotNull();
      }
    }
  }

  /** Non-root, read-only root filesystem, no capabilities; a writable /tmp for the JVM. */
  private static void checkSecurity(PodView pod, boolean socketDirInit) {
    for (Container ct : pod.spec().getContainers()) {
      SecurityContext sc = ct.getSecurityContext();
      assertThat(sc).as("%s securityContext", ct.getName()).isNotNull();
      assertThat(sc.getRunAsNonRoot()).as("%s runAsNonRoot", ct.getName()).isTrue();
      assertThat(sc.getRunAsUser()).as("%s runAsUser", ct.getName()).isNotNull().isNotZero();
      assertThat(sc.getReadOnlyRootFilesystem())
          .as("%s readOnlyRootFilesystem", ct.getName())
          .isTrue();
      assertThat(sc.getAllowPrivilegeEscalation())
          .as("%s allowPrivilegeEscalation", ct.getName())
          .isFalse();
      assertThat(sc.getPrivileged()).as("%s privileged", ct.getName()).isNotEqualTo(Boolean.TRUE);
      assertThat(sc.getCapabilities().getDrop())
          .as("%s drops", ct.getName())
          .containsExactly("ALL");
      assertThat(sc.getCapabilities().getAdd()).as("%s adds", ct.getName()).isNullOrEmpty();
      VolumeMount tmp = pod.mountOf(ct, "/tmp/x");
      assertThat(tmp).as("%s: writable /tmp", ct.getName()).isNotNull();
      assertThat(pod.volume(tmp.getName()).getEmptyDir()).isNotNull();
      assertThat(ct.getResources().getRequests())
          .as("%s requests", ct.getName())
          .containsKeys("cpu", "memory");
      assertThat(ct.getResources().getLimits()).as("%s limits", ct.getName()).containsKey("memory");
    }
    List<Container> inits = pod.spec().getInitContainers();
    if (socketDirInit) {
      assertThat(inits).hasSize(1);
      Container init = inits.get(0);
      SecurityContext sc = init.getSecurityContext();
      // The one root container: it may only chown the socket directory.
      assertThat(init.getCommand().get(0)).isEqualTo("chown");
      assertThat(sc.getCapabilities().getDrop()).containsExactly("ALL");
      assertThat(sc.getCapabilities().getAdd()).containsExactly("CHOWN");
      assertThat(sc.getAllowPrivilegeEscalation()).isFalse();
      assertThat(sc.getReadOnlyRootFilesystem()).isTrue();
      Container main = pod.spec().getContainers().get(0);
      assertThat(init.getCommand().get(1))
          .isEqualTo(
              main.getSecurityContext().getRunAsUser()
                  + ":"
                  + main.getSecurityContext().getRunAsGroup());
      assertThat(init.getVolumeMounts()).hasSize(1);
      assertThat(pod.volume(init.getVolumeMounts().get(0).getName()).getHostPath()).isNotNull();
      assertThat(init.getCommand().get(2)).isEqualTo(init.getVolumeMounts().get(0).getMountPath());
    } else {
      assertThat(inits).as("init containers").isNullOrEmpty();
    }
  }

  /** Startup and liveness on /healthz, readiness on /readyz, at the admin listener's address. */
  private static void checkProbes(PodView pod, Container ct, InetSocketAddress admin, String what) {
    assertThat(admin).as("%s admin listener", what).isNotNull();
    assertProbe(ct.getStartupProbe(), HEALTHZ, admin, pod, what + " startupProbe");
    assertProbe(ct.getLivenessProbe(), HEALTHZ, admin, pod, what + " livenessProbe");
    assertProbe(ct.getReadinessProbe(), READYZ, admin, pod, what + " readinessProbe");
    assertThat(containerPort(ct, "admin")).isEqualTo(admin.getPort());
  }

  private static void assertProbe(
      Probe probe, String path, InetSocketAddress admin, PodView pod, String what) {
    assertThat(probe).as(what).isNotNull();
    HTTPGetAction get = probe.getHttpGet();
    assertThat(get).as("%s is an HTTP GET", what).isNotNull();
    assertThat(get.getPath()).as("%s path", what).isEqualTo(path);
    assertThat(get.getPort().getIntVal())
        .as("%s port = admin port", what)
        .isEqualTo(admin.getPort());
    assertThat(get.getScheme()).as("%s scheme", what).isIn(null, "HTTP");
    InetAddress bound = admin.getAddress();
    if (bound.isAnyLocalAddress()) {
      assertThat(get.getHost()).as("%s host", what).isNull();
    } else if (bound.isLoopbackAddress()) {
      // The kubelet probes the pod IP unless told otherwise; a loopback bind is reachable only
      // from the host's own network namespace.
      assertThat(pod.hostNetwork()).as("%s: loopback admin needs the host network", what).isTrue();
      assertThat(get.getHost()).as("%s host", what).isEqualTo(bound.getHostAddress());
    } else {
      String podIp = pod.hostNetwork() ? PodView.NODE_IP : PodView.POD_NETWORK_IP;
      assertThat(bound.getHostAddress()).as("%s: admin bound to the pod IP", what).isEqualTo(podIp);
      assertThat(get.getHost()).as("%s host", what).isNull();
    }
  }

  private static void checkGrace(PodView pod, Duration grace, String what) {
    assertThat(Duration.ofSeconds(pod.spec().getTerminationGracePeriodSeconds()))
        .as("%s terminationGracePeriodSeconds > --grace-period", what)
        .isGreaterThan(grace);
  }

  private static Set<String> rules(String group, String resource, String... verbs) {
    Set<String> out = new TreeSet<>();
    for (String v : verbs) {
      out.add(group + "/" + resource + ":" + v);
    }
    return out;
  }

  /** The ClusterRole named {@code name} grants exactly {@code expected}, bound to the pod's SA. */
  private static void checkRbac(
      Rendered r, PodView pod, String name, Set<String> expected, boolean usesApi) {
    String sa = pod.spec().getServiceAccountName();
    assertThat(sa).as("%s serviceAccountName", name).isEqualTo(name);
    ServiceAccount account = r.get(ServiceAccount.class, sa);
    assertThat(pod.spec().getAutomountServiceAccountToken())
        .as("%s mounts an API token only when it uses the API", name)
        .isEqualTo(usesApi);
    assertThat(account.getAutomountServiceAccountToken()).isEqualTo(usesApi);
    ClusterRole role = r.find(ClusterRole.class, name);
    ClusterRoleBinding binding = r.find(ClusterRoleBinding.class, name);
    if (expected.isEmpty()) {
      assertThat(role).as("%s ClusterRole (nothing to grant)", name).isNull();
      assertThat(binding).as("%s ClusterRoleBinding", name).isNull();
      return;
    }
    assertThat(role).as("%s ClusterRole", name).isNotNull();
    Set<String> granted = new TreeSet<>();
    for (PolicyRule rule : role.getRules()) {
      assertThat(rule.getResourceNames()).as("%s resourceNames", name).isNullOrEmpty();
      assertThat(rule.getNonResourceURLs()).as("%s nonResourceURLs", name).isNullOrEmpty();
      for (String g : rule.getApiGroups()) {
        for (String res : rule.getResources()) {
          for (String v : rule.getVerbs()) {
            assertThat(granted.add(g + "/" + res + ":" + v))
                .as("%s grants %s/%s:%s once", name, g, res, v)
                .isTrue();
          }
        }
      }
    }
    assertThat(granted).as("%s RBAC", name).containsExactlyElementsOf(expected);
    assertThat(binding).as("%s ClusterRoleBinding", name).isNotNull();
    assertThat(binding.getRoleRef().getKind()).isEqualTo("ClusterRole");
    assertThat(binding.getRoleRef().getName()).isEqualTo(name);
    assertThat(binding.getSubjects()).hasSize(1);
    assertThat(binding.getSubjects().get(0).getKind()).isEqualTo("ServiceAccount");
    assertThat(binding.getSubjects().get(0).getName()).isEqualTo(sa);
    assertThat(binding.getSubjects().get(0).getNamespace()).isEqualTo(Helm.NAMESPACE);
  }

  /** Every Service selects pods of a rendered workload, on ports those pods declare. */
  private static void checkServices(Rendered r) {
    List<PodView> pods = workloads(r);
    for (Service svc : r.all(Service.class)) {
      Map<String, String> selector = svc.getSpec().getSelector();
      assertThat(selector).as("Service %s selector", svc.getMetadata().getName()).isNotEmpty();
      List<PodView> selected =
          pods.stream()
              .filter(p -> p.labels().entrySet().containsAll(selector.entrySet()))
              .toList();
      assertThat(selected).as("pods of Service %s", svc.getMetadata().getName()).hasSize(1);
      Container ct = selected.get(0).spec().getContainers().get(0);
      for (ServicePort port : svc.getSpec().getPorts()) {
        assertThat(port.getTargetPort().getStrVal()).as("targetPort by name").isNotNull();
        assertThat(containerPort(ct, port.getTargetPort().getStrVal())).isPositive();
      }
    }
  }

  private static void checkPdb(ChartCase c, Rendered r) {
    boolean serverPdb = c.values().getBoolean("server.pdb.enabled", true);
    PodDisruptionBudget pdb = r.find(PodDisruptionBudget.class, SERVER);
    assertThat(pdb != null).as("server PodDisruptionBudget").isEqualTo(serverPdb);
    if (pdb != null) {
      Map<String, String> sel = pdb.getSpec().getSelector().getMatchLabels();
      PodView server =
          workloads(r).stream()
              .filter(p -> p.spec().getContainers().get(0).getName().equals("tunnel-server"))
              .findFirst()
              .orElseThrow();
      assertThat(server.labels()).containsAllEntriesOf(sel);
      assertThat(pdb.getSpec().getMaxUnavailable()).isNotNull();
    }
  }

  private static void checkServiceMonitors(ChartCase c, Rendered r) {
    List<GenericKubernetesResource> monitors = r.all(GenericKubernetesResource.class);
    if (!c.serviceMonitor()) {
      assertThat(monitors).as("ServiceMonitors").isEmpty();
      return;
    }
    assertThat(monitors).hasSize(c.agents() ? 2 : 1);
    for (GenericKubernetesResource sm : monitors) {
      assertThat(sm.getKind()).isEqualTo("ServiceMonitor");
      @SuppressWarnings("unchecked")
      Map<String, String> match =
          (Map<String, String>)
              ((Map<String, Object>) sm.get("spec", "selector")).get("matchLabels");
      List<Service> services =
          r.all(Service.class).stream()
              .filter(s -> s.getMetadata().getLabels().entrySet().containsAll(match.entrySet()))
              .toList();
      assertThat(services)
          .as("Services of ServiceMonitor %s", sm.getMetadata().getName())
          .hasSize(1);
      List<Map<String, Object>> endpoints = sm.get("spec", "endpoints");
      assertThat(endpoints).hasSize(1);
      assertThat(endpoints.get(0)).containsEntry("path", "/metrics").containsEntry("port", "admin");
      servicePort(services.get(0), "admin");
    }
  }

  private static void checkNetworkPolicy(ChartCase c, Rendered r) {
    List<NetworkPolicy> policies = r.all(NetworkPolicy.class);
    if (!c.networkPolicy()) {
      assertThat(policies).isEmpty();
      return;
    }
    assertThat(policies).hasSize(1);
    NetworkPolicy np = policies.get(0);
    PodView server = new PodView(r.get(Deployment.class, SERVER).getSpec().getTemplate(), r);
    assertThat(server.labels())
        .containsAllEntriesOf(np.getSpec().getPodSelector().getMatchLabels());
    Set<String> open = new TreeSet<>();
    np.getSpec().getIngress().forEach(rule -> rule.getPorts().forEach(p -> open.add(portName(p))));
    Container ct = server.container("tunnel-server");
    for (String name : open) {
      assertThat(containerPort(ct, name)).isPositive();
    }
    Set<String> expected = new TreeSet<>();
    if (c.transport().equals("tcp")) {
      expected.add("connect");
    }
    if (c.agents()) {
      expected.add("agents");
    }
    if (!((List<?>) c.values().get("networkPolicy.adminFrom", List.of())).isEmpty()) {
      expected.add("admin");
    }
    assertThat(open).as("ports the NetworkPolicy opens").isEqualTo(expected);
  }

  private static String portName(NetworkPolicyPort p) {
    return p.getPort().getStrVal();
  }

  static List<PodView> workloads(Rendered r) {
    List<PodView> out = new ArrayList<>();
    r.all(DaemonSet.class).forEach(d -> out.add(new PodView(d.getSpec().getTemplate(), r)));
    r.all(Deployment.class).forEach(d -> out.add(new PodView(d.getSpec().getTemplate(), r)));
    return out;
  }

  static int containerPort(Container ct, String name) {
    return ct.getPorts().stream()
        .filter(p -> name.equals(p.getName()))
        .map(ContainerPort::getContainerPort)
        .findFirst()
        .orElseThrow(() -> new AssertionError(ct.getName() + " has no port named " + name));
  }

  static ServicePort servicePort(Service svc, String name) {
    return svc.getSpec().getPorts().stream()
        .filter(p -> name.equals(p.getName()))
        .findFirst()
        .orElseThrow(
            () ->
                new AssertionError(
                    "Service " + svc.getMetadata().getName() + " has no port " + name));
  }
}
