package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgentMain;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;

/**
 * The link between the server's host and an agent's host goes down and comes back ({@code ip link
 * set down/up} in network namespaces), in the middle of a checksummed download through the tunnel:
 * a cut shorter than the ping timeout loses nothing; a longer one ends the session, the client sees
 * its transfer cut, and the agent is back once the link is. Real processes; the ping timeout is
 * lowered (1 s pings, 6 s timeout) so that the test takes seconds; the short cut (1 s) leaves room
 * for TCP's retransmission backoff after the link is back.
 */
@EnabledOnOs(OS.LINUX)
class LinkFaultTest {
  private static final String POD = "10.42.1.10";
  private static final int MIB = 48;
  private static NetnsHosts hosts;
  private static String srv;
  private static String node;
  private static String sha;
  private static Process server;
  private static Process agent;

  @BeforeAll
  static void hosts() throws Exception {
    hosts = new NetnsHosts();
    srv = hosts.host("lsrv");
    node = hosts.host("lnode");
    hosts.link(srv, node, "10.214.1");
    hosts.addLocalAddress(node, POD);
    Path www = Files.createTempDirectory("www");
    byte[] data = new byte[MIB << 20];
    new SplittableRandom(3).nextBytes(data);
    Files.write(www.resolve("blob"), data);
    sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
    hosts.start(
        node,
        "http",
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        POD,
        "--directory",
        www.toString());
    server = startServer();
    agent = startAgent();
    awaitAgent();
  }

  /** Each test starts with the server up and the agent connected, whatever the last one did. */
  @org.junit.jupiter.api.BeforeEach
  void upAndConnected() throws Exception {
    if (!server.isAlive()) {
      server = startServer();
    }
    if (!agent.isAlive()) {
      agent = startAgent();
    }
    awaitAgent();
  }

  @AfterAll
  static void cleanUp() throws Exception {
    if (hosts != null) {
      hosts.close();
    }
  }

  private static Process startServer() throws Exception {
    Process p =
        hosts.startJava(
            srv,
            "server",
            TunnelServerMain.class,
            "--mode",
            "pod",
            "--connect-listen",
            "127.0.0.1:8090",
            "--agent-listen",
            "0.0.0.0:8091",
            "--ping-interval",
            "1s",
            "--ping-timeout",
            "6s");
    await()
        .atMost(Duration.ofSeconds(60))
        .until(
            () -> hosts.tryExec(srv, "curl", "-sf", "http://127.0.0.1:8092/healthz").exit() == 0);
    return p;
  }

  private static Process startAgent() throws Exception {
    return hosts.startJava(
        node,
        "agent",
        TunnelAgentMain.class,
        "--server",
        "ws://10.214.1.1:8091",
        "--node-name",
        "lnode",
        "--node-ip",
        "10.214.1.2",
        "--pod-cidr",
        "10.42.1.0/24",
        "--mode",
        "pod",
        "--ping-interval",
        "1s",
        "--ping-timeout",
        "6s");
  }

  private static void awaitAgent() {
    await()
        .atMost(Duration.ofSeconds(60))
        .until(
            () -> hosts.tryExec(node, "curl", "-sf", "http://127.0.0.1:8093/readyz").exit() == 0);
  }

  /** A download through the tunnel at 8 MiB/s (6 s for 48 MiB); its exit code and SHA-256. */
  private static CompletableFuture<NetnsHosts.Result> download(Path out) {
    return CompletableFuture.supplyAsync(
        () -> {
          try {
            NetnsHosts.Result r =
                hosts.tryExec(
                    srv,
                    "curl",
                    "-sS",
                    "-p",
                    "-x",
                    "127.0.0.1:8090",
                    "--limit-rate",
                    "8M",
                    "--max-time",
                    "60",
                    "-o",
                    out.toString(),
                    "http://" + POD + ":8080/blob");
            return r;
          } catch (Exception e) {
            throw new IllegalStateException(e);
          }
        });
  }

  /** Waits until a few MiB of the download have arrived. */
  private static void awaitProgress(Path out) {
    await().atMost(Duration.ofSeconds(30)).until(() -> Files.size(out) >= 8L << 20);
  }

  private static String sha256(Path f) throws Exception {
    return HexFormat.of()
        .formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
  }

  private static void setLink(String state) throws Exception {
    String veth = hosts.exec(node, "ip", "-o", "link", "show", "type", "veth").split(":")[1].trim();
    veth = veth.contains("@") ? veth.substring(0, veth.indexOf('@')) : veth;
    hosts.exec(node, "ip", "link", "set", veth, state);
  }

  @Test
  void aCutShorterThanThePingTimeoutLosesNothing() throws Exception {
    Path out = Files.createTempFile("blob", ".bin");
    CompletableFuture<NetnsHosts.Result> d = download(out);
    awaitProgress(out); // mid-download
    setLink("down");
    Thread.sleep(1000); // the cut itself lasts this long
    setLink("up");
    NetnsHosts.Result r = d.get(90, TimeUnit.SECONDS);
    assertThat(r.exit()).as(r.output() + hosts.log("server")).isZero();
    assertThat(sha256(out)).isEqualTo(sha);
  }

  @Test
  void aLongerCutEndsTheTransferVisiblyAndTheAgentComesBack() throws Exception {
    Path out = Files.createTempFile("blob", ".bin");
    CompletableFuture<NetnsHosts.Result> d = download(out);
    awaitProgress(out); // mid-download
    setLink("down");
    try {
      NetnsHosts.Result cut = d.get(30, TimeUnit.SECONDS);
      // The session ended at the ping timeout and took the stream with it: curl says so.
      assertThat(cut.exit()).as(cut.output()).isNotZero();
      assertThat(Files.size(out)).isLessThan((long) MIB << 20);
    } finally {
      setLink("up");
    }
    awaitAgent();
    Path again = Files.createTempFile("blob", ".bin");
    NetnsHosts.Result r = download(again).get(90, TimeUnit.SECONDS);
    assertThat(r.exit()).as(r.output()).isZero();
    assertThat(sha256(again)).isEqualTo(sha);
  }

  @Test
  void aServerKilledMidTransferCutsItAndItsAgentIsBackSecondsAfterARestart() throws Exception {
    Path out = Files.createTempFile("blob", ".bin");
    CompletableFuture<NetnsHosts.Result> d = download(out);
    awaitProgress(out); // mid-download
    kill9(server, srv, 8092);
    NetnsHosts.Result cut = d.get(30, TimeUnit.SECONDS);
    assertThat(cut.exit()).as(cut.output()).isNotZero();
    Thread.sleep(5000); // an outage
    server = startServer();
    await()
        .atMost(Duration.ofSeconds(30))
        .until(
            () ->
                hosts.tryExec(srv, "curl", "-sf", "http://127.0.0.1:8092/readyz").exit() == 0
                    && routedViaAgent());
    Path again = Files.createTempFile("blob", ".bin");
    NetnsHosts.Result r = download(again).get(90, TimeUnit.SECONDS);
    assertThat(r.exit()).as(r.output()).isZero();
    assertThat(sha256(again)).isEqualTo(sha);
  }

  @Test
  void anAgentKilledMidTransferCutsItNothingIsDialledDirectlyAndARestartServesAgain()
      throws Exception {
    Path out = Files.createTempFile("blob", ".bin");
    CompletableFuture<NetnsHosts.Result> d = download(out);
    awaitProgress(out); // mid-download
    kill9(agent, node, 8093);
    NetnsHosts.Result cut = d.get(30, TimeUnit.SECONDS);
    // The stream ended with the session, visibly: curl reports the cut, and the file is short.
    assertThat(cut.exit()).as(cut.output()).isNotZero();
    assertThat(Files.size(out)).isLessThan((long) MIB << 20);
    // While the agent is gone, its node's pods get a 503 from the server, not a direct dial.
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () ->
                hosts
                    .tryExec(
                        srv,
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_connect}",
                        "-p",
                        "-x",
                        "127.0.0.1:8090",
                        "http://" + POD + ":8080/blob")
                    .output()
                    .strip()
                    .equals("503"));
    agent = startAgent();
    awaitAgent();
    await().atMost(Duration.ofSeconds(30)).until(LinkFaultTest::routedViaAgent);
    Path again = Files.createTempFile("blob", ".bin");
    NetnsHosts.Result r = download(again).get(90, TimeUnit.SECONDS);
    assertThat(r.exit()).as(r.output()).isZero();
    assertThat(sha256(again)).isEqualTo(sha);
  }

  /**
   * SIGKILL to a process and anything it runs, and wait until its admin port on {@code host} is
   * closed.
   */
  private static void kill9(Process p, String host, int adminPort) throws Exception {
    p.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
    p.destroyForcibly().waitFor();
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () ->
                hosts
                        .tryExec(host, "curl", "-sf", "http://127.0.0.1:" + adminPort + "/healthz")
                        .exit()
                    != 0);
  }

  private static boolean routedViaAgent() throws Exception {
    return hosts
        .tryExec(srv, "curl", "-s", "http://127.0.0.1:8092/routez?target=" + POD + ":8080")
        .output()
        .startsWith("via lnode");
  }
}
