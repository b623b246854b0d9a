package io.egresstunnel.charts;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.HTTPGetAction;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.DaemonSet;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.UnixDomainSocketAddress;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.awaitility.core.ConditionTimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Runs tunnel-server and tunnel-agent as the rendered pods would: the rendered command line and
 * environment, the ConfigMap and Secret files laid out where the volume mounts put them (under a
 * temporary directory), the socket directory as its hostPath. Then the kubelet's probes, taken from
 * the rendered objects, must answer, and a CONNECT on the rendered socket must reach a toy kubelet
 * through the agent.
 */
class ChartSmokeTest {
  private static final String TOKEN = "smoke-test-token-0123456789abcdef";
  private static final String NODE_IP = "127.0.0.2";

  private final List<Process> processes = new ArrayList<>();

  @TempDir Path dir;

  @AfterEach
  void stop() throws InterruptedException {
    for (Process p : processes) {
      p.destroy(); // SIGTERM: the programs drain for their (short) --grace-period
    }
    for (Process p : processes) {
      if (!p.waitFor(15, TimeUnit.SECONDS)) {
        p.destroyForcibly();
      }
    }
  }

  @Test
  void tokenOverWs() throws Exception {
    runAndConnect(
        Values.defaults().with("agentAuth.type", "token").with("agentAuth.token.value", TOKEN),
        Map.of());
  }

  /**
   * Certificates from {@code tunnel-server certs}: TLS files given to the chart with --set-file,
   * agent certificates in a Secret made from the same directory.
   */
  @Test
  void nodeCertificatesOverWssFromTheCertsCommand() throws Exception {
    Path certs = dir.resolve("certs");
    Process p =
        new ProcessBuilder(
                java(),
                "-cp",
                classpath(),
                "io.egresstunnel.server.TunnelServerMain",
                "certs",
                "--dir",
                certs.toString(),
                "--server-san",
                "127.0.0.1",
                "--node",
                PodView.NODE_NAME)
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve("certs.log").toFile())
            .start();
    assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
    assertThat(p.exitValue()).as(Files.readString(dir.resolve("certs.log"))).isZero();
    Map<String, byte[]> agentCerts = new LinkedHashMap<>();
    for (String f : List.of("agent-node-a.crt", "agent-node-a.key")) {
      agentCerts.put(f, Files.readAllBytes(certs.resolve(f)));
    }
    runAndConnect(
        Values.defaults()
            .with("tls.enabled", true)
            .with("tls.ca", Files.readString(certs.resolve("ca.crt")))
            .with("tls.cert", Files.readString(certs.resolve("server.crt")))
            .with("tls.key", Files.readString(certs.resolve("server.key")))
            .with("agentAuth.type", "certificate")
            .with("agentAuth.certificate.existingSecret", "egress-tunnel-agent-certs"),
        Map.of("egress-tunnel-agent-certs", agentCerts));
  }

  /**
   * Renders {@code base} (plus what this machine needs: ports, the socket directory, no API),
   * starts server and agent from it, waits for every probe, and sends a CONNECT through the socket
   * to a toy kubelet on the agent's node. {@code secrets} stand in for Secrets the chart names but
   * does not render.
   */
  private void runAndConnect(Values base, Map<String, Map<String, byte[]>> secrets)
      throws Exception {
    int agentPort = freePort();
    int serverAdmin = freePort();
    int agentAdmin = freePort();
    Path socketDir = Files.createDirectories(dir.resolve("run-egress-tunnel"));
    boolean tls = base.getBoolean("tls.enabled", false);
    try (ServerSocket kubelet = new ServerSocket()) {
      kubelet.bind(new InetSocketAddress(InetAddress.getByName(NODE_IP), 0));
      Thread toy = new Thread(() -> serveToyKubelet(kubelet), "toy-kubelet");
      toy.setDaemon(true);
      toy.start();

      Values values =
          base.with("mode", "agent")
              .with("server.watchApi", false) // no API here: routes from the agent's hello
              .with("server.connect.socketDir", socketDir.toString())
              .with("server.agentListener.port", agentPort)
              .with("server.admin.port", serverAdmin)
              .with("server.gracePeriod", "1s")
              .with("agent.admin.port", agentAdmin)
              .with("agent.gracePeriod", "1s")
              .with("agent.kubeletPort", kubelet.getLocalPort())
              .with("agent.serverURL", (tls ? "wss" : "ws") + "://127.0.0.1:" + agentPort)
              .with("logging.format", "text");
      Rendered r = Rendered.parse(Helm.get().template(values));
      PodView server =
          new PodView(
              r.get(DaemonSet.class, ChartChecks.SERVER).getSpec().getTemplate(), r, NODE_IP);
      PodView agent =
          new PodView(
              r.get(DaemonSet.class, ChartChecks.AGENT).getSpec().getTemplate(), r, NODE_IP);

      start(server, "tunnel-server", "io.egresstunnel.server.TunnelServerMain", r, secrets);
      Container serverCt = server.container("tunnel-server");
      awaitProbe(serverCt.getStartupProbe(), "server startup");
      awaitProbe(serverCt.getLivenessProbe(), "server liveness");
      awaitProbe(serverCt.getReadinessProbe(), "server readiness");

      start(agent, "tunnel-agent", "io.egresstunnel.agent.TunnelAgentMain", r, secrets);
      Container agentCt = agent.container("tunnel-agent");
      awaitProbe(agentCt.getStartupProbe(), "agent startup");
      awaitProbe(agentCt.getLivenessProbe(), "agent liveness");
      awaitProbe(agentCt.getReadinessProbe(), "agent readiness (a session is established)");

      assertThat(get(probeUri(serverCt.getLivenessProbe(), "/metrics")).body())
          .contains("egress_tunnel_server_");
      assertThat(get(probeUri(agentCt.getLivenessProbe(), "/metrics")).body())
          .contains("egress_tunnel_agent_");

      // The apiserver's CONNECT on the rendered socket reaches the node's kubelet via its agent.
      String target = NODE_IP + ":" + kubelet.getLocalPort();
      assertThat(get(probeUri(serverCt.getLivenessProbe(), "/routez?target=" + target)).body())
          .contains("via node-a");
      Path socket = socketDir.resolve("connect.sock");
      try (SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
        write(ch, "CONNECT " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        String head = readUntil(ch, "\r\n\r\n");
        assertThat(head).as(logs()).startsWith("HTTP/1.1 200");
        write(ch, "hello\n");
        assertThat(readUntil(ch, "\n")).isEqualTo("kubelet of node-a: hello\n");
      }
    }
  }

  private static String java() {
    return Path.of(System.getProperty("java.home"), "bin", "java").toString();
  }

  private static String classpath() {
    return System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
  }

  /** Starts the container's program with its rendered args and env, files in place. */
  private void start(
      PodView pod,
      String container,
      String mainClass,
      Rendered r,
      Map<String, Map<String, byte[]>> secrets)
      throws IOException {
    Container ct = pod.container(container);
    Map<String, String> rewrite = layOutVolumes(pod, ct, r, secrets);
    Map<String, String> env = pod.env(ct);
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.add("-cp");
    command.add(
        System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")));
    command.add(mainClass);
    for (String arg : pod.expandedArgs(ct)) {
      command.add(rewritePaths(arg, rewrite));
    }
    assertThat(ct.getCommand()).as("the image runs the jar of this main class").hasSize(3);
    ProcessBuilder pb = new ProcessBuilder(command);
    pb.environment().putAll(env); // JAVA_TOOL_OPTIONS among them: the rendered JVM options
    pb.redirectErrorStream(true);
    pb.redirectOutput(dir.resolve(container + ".log").toFile());
    processes.add(pb.start());
  }

  /**
   * Writes every ConfigMap and Secret volume the container mounts into a directory of its own, with
   * paths inside the files moved there too; hostPath volumes stay where they are. Returns mount
   * path to local directory.
   */
  private Map<String, String> layOutVolumes(
      PodView pod, Container ct, Rendered r, Map<String, Map<String, byte[]>> secrets)
      throws IOException {
    Map<String, String> rewrite = new LinkedHashMap<>();
    for (VolumeMount m : ct.getVolumeMounts()) {
      Volume v = pod.volume(m.getName());
      if (v.getHostPath() != null || v.getEmptyDir() != null) {
        continue;
      }
      Path local = Files.createDirectories(dir.resolve(ct.getName() + "-" + m.getName()));
      rewrite.put(m.getMountPath(), local.toString());
    }
    for (VolumeMount m : ct.getVolumeMounts()) {
      Volume v = pod.volume(m.getName());
      Path local =
          rewrite.containsKey(m.getMountPath()) ? Path.of(rewrite.get(m.getMountPath())) : null;
      if (v.getConfigMap() != null) {
        for (Map.Entry<String, String> e :
            r.get(ConfigMap.class, v.getConfigMap().getName()).getData().entrySet()) {
          Files.writeString(local.resolve(e.getKey()), rewritePaths(e.getValue(), rewrite));
        }
      } else if (v.getSecret() != null) {
        String name = v.getSecret().getSecretName();
        Map<String, byte[]> data = new LinkedHashMap<>();
        Secret s = r.find(Secret.class, name);
        if (s != null) {
          s.getData().forEach((k, b64) -> data.put(k, Base64.getDecoder().decode(b64)));
        } else {
          assertThat(secrets).as("Secret %s, rendered or given", name).containsKey(name);
          data.putAll(secrets.get(name));
        }
        if (v.getSecret().getItems() == null || v.getSecret().getItems().isEmpty()) {
          for (Map.Entry<String, byte[]> e : data.entrySet()) {
            Files.write(local.resolve(e.getKey()), e.getValue());
          }
        } else {
          v.getSecret()
              .getItems()
              .forEach(
                  item -> {
                    try {
                      Files.write(local.resolve(item.getPath()), data.get(item.getKey()));
                    } catch (IOException e) {
                      throw new UncheckedIOException(e);
                    }
                  });
        }
      }
    }
    return rewrite;
  }

  private static String rewritePaths(String s, Map<String, String> rewrite) {
    String out = s;
    for (Map.Entry<String, String> e : rewrite.entrySet()) {
      out = out.replace(e.getKey() + "/", e.getValue() + "/");
    }
    return out;
  }

  /** What the kubelet would ask: the probe's host (the pod IP, here the node's, if none). */
  private static URI probeUri(Probe probe, String path) {
    HTTPGetAction get = probe.getHttpGet();
    String host = get.getHost() != null ? get.getHost() : NODE_IP;
    return URI.create("http://" + host + ":" + get.getPort().getIntVal() + path);
  }

  private void awaitProbe(Probe probe, String what) throws Exception {
    URI uri = probeUri(probe, probe.getHttpGet().getPath());
    AtomicReference<String> last = new AtomicReference<>("no answer");
    try {
      await()
          .atMost(Duration.ofSeconds(60))
          .pollInterval(Duration.ofMillis(100))
          .until(
              () -> {
                for (Process p : processes) {
                  assertThat(p.isAlive())
                      .as("%s: process exited; logs in %s:\n%s", what, dir, logs())
                      .isTrue();
                }
                try {
                  HttpResponse<String> response = get(uri);
                  last.set(response.statusCode() + " " + response.body());
                  return response.statusCode() == 200;
                } catch (IOException e) {
                  last.set(e.toString());
                  return false;
                }
              });
    } catch (ConditionTimeoutException e) {
      throw new AssertionError(
          what + ": " + uri + " did not answer 200: " + last.get() + "\n" + logs(), e);
    }
  }

  private String logs() {
    StringBuilder b = new StringBuilder();
    for (String name : List.of("tunnel-server", "tunnel-agent")) {
      Path log = dir.resolve(name + ".log");
      if (Files.exists(log)) {
        try {
          b.append("--- ").append(name).append('\n').append(Files.readString(log));
        } catch (IOException e) {
          b.append(e);
        }
      }
    }
    return b.toString();
  }

  private static HttpResponse<String> get(URI uri) throws IOException, InterruptedException {
    HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    return client.send(
        HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(5)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private static void serveToyKubelet(ServerSocket server) {
    while (!server.isClosed()) {
      try (Socket s = server.accept()) {
        BufferedReader in =
            new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
        String line = in.readLine();
        OutputStream out = s.getOutputStream();
        out.write(("kubelet of node-a: " + line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
      } catch (IOException e) {
        return;
      }
    }
  }

  private static void write(SocketChannel ch, String s) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(s.getBytes(StandardCharsets.UTF_8));
    while (b.hasRemaining()) {
      ch.write(b);
    }
  }

  private static String readUntil(SocketChannel ch, String end) throws IOException {
    StringBuilder b = new StringBuilder();
    ByteBuffer one = ByteBuffer.allocate(1);
    while (!b.toString().endsWith(end)) {
      one.clear();
      if (ch.read(one) < 0) {
        throw new IOException("closed after '" + b + "'");
      }
      b.append((char) one.get(0));
    }
    return b.toString();
  }
}
