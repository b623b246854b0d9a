package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.agent.TunnelAgentMain;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;

/**
 * A control plane outside the cluster network, on three hosts made of network namespaces: the
 * server's host ({@code srv}) reaches the two agents' hosts over veth links and nothing else; a
 * "Service" address (10.96.0.10) and a webhook's name exist only on the agents' hosts, each of
 * which serves its own name there, so the answer says which agent carried the dial. Real processes:
 * tunnel-server, two tunnel-agents, Python HTTP servers, curl as the apiserver.
 */
@EnabledOnOs(OS.LINUX)
class MultiHostDefaultRouteTest {
  private static final String SERVICE = "10.96.0.10";

  /** An address only a1's host has: a2 has no route to it. */
  private static final String ONLY_A1 = "10.97.0.20";

  private static NetnsHosts hosts;
  private static String srv;
  private static String a1;
  private static String a2;
  private static Path www;

  @BeforeAll
  static void hosts() throws Exception {
    hosts = new NetnsHosts();
    srv = hosts.host("srv");
    a1 = hosts.host("a1");
    a2 = hosts.host("a2");
    hosts.link(srv, a1, "10.213.1");
    hosts.link(srv, a2, "10.213.2");
    www = Files.createTempDirectory("www");
    for (String[] agent : new String[][] {{a1, "a1"}, {a2, "a2"}}) {
      hosts.addLocalAddress(agent[0], SERVICE);
      hosts.hostsFile(agent[0], SERVICE + " webhook.ns.svc\n");
      Path dir = Files.createDirectories(www.resolve(agent[1]));
      Files.writeString(dir.resolve("id"), agent[1] + "\n");
      hosts.start(
          agent[0],
          "http-" + agent[1],
          "python3",
          "-m",
          "http.server",
          "8080",
          "--bind",
          SERVICE,
          "--directory",
          dir.toString());
    }
    onlyA1();
  }

  private static void onlyA1() throws Exception {
    hosts.addLocalAddress(a1, ONLY_A1);
    hosts.start(
        a1,
        "http-only-a1",
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        ONLY_A1,
        "--directory",
        www.resolve("a1").toString());
  }

  @AfterAll
  static void cleanUp() throws Exception {
    if (hosts != null) {
      hosts.close();
    }
  }

  private static Process server(String defaultRoute) throws Exception {
    Process p =
        hosts.startJava(
            srv,
            "server-" + defaultRoute,
            TunnelServerMain.class,
            "--mode",
            "agent",
            "--connect-listen",
            "127.0.0.1:8090",
            "--agent-listen",
            "0.0.0.0:8091",
            "--admin-listen",
            "127.0.0.1:8092",
            "--default-route",
            defaultRoute);
    await()
        .atMost(Duration.ofSeconds(60))
        .until(
            () -> hosts.tryExec(srv, "curl", "-sf", "http://127.0.0.1:8092/healthz").exit() == 0);
    return p;
  }

  private static Process agent(String ns, String name, String serverIp) throws Exception {
    return hosts.startJava(
        ns,
        "agent-" + name,
        TunnelAgentMain.class,
        "--server",
        "ws://" + serverIp + ":8091",
        "--node-name",
        name,
        "--node-ip",
        serverIp.substring(0, serverIp.length() - 1) + "2",
        "--default-route");
  }

  private static String routez(String target) throws Exception {
    return hosts.exec(srv, "curl", "-sS", "http://127.0.0.1:8092/routez?target=" + target).trim();
  }

  /** curl as the apiserver: one CONNECT per URL (the HTTP server closes each connection). */
  private static NetnsHosts.Result fetch(String url, int times) throws Exception {
    List<String> cmd =
        new ArrayList<>(List.of("curl", "-sS", "-p", "-x", "127.0.0.1:8090", "--max-time", "60"));
    for (int i = 0; i < times; i++) {
      cmd.add(url);
    }
    return hosts.tryExec(srv, cmd.toArray(String[]::new));
  }

  /** The status the server answered curl's CONNECT for {@code url} with. */
  private static String connectStatus(String url) throws Exception {
    return hosts
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
            "--max-time",
            "30",
            url)
        .output();
  }

  private static long count(String output, String id) {
    return output.lines().filter(id::equals).count();
  }

  @Test
  void servicesAndNamesOnlyTheAgentsReachGoThroughThemSpreadAndSurviveALostAgent()
      throws Exception {
    Process server = server("agents");
    Process agent1 = agent(a1, "a1", "10.213.1.1");
    agent(a2, "a2", "10.213.2.1");
    try {
      await()
          .atMost(Duration.ofSeconds(60))
          .until(() -> routez(SERVICE + ":8080").contains("2 eligible agent(s)"));

      NetnsHosts.Result spread = fetch("http://" + SERVICE + ":8080/id", 200);
      assertThat(spread.exit()).as(spread.output()).isZero();
      assertThat(count(spread.output(), "a1") + count(spread.output(), "a2")).isEqualTo(200);
      assertThat(count(spread.output(), "a1")).as("dials through a1").isGreaterThanOrEqualTo(40);
      assertThat(count(spread.output(), "a2")).as("dials through a2").isGreaterThanOrEqualTo(40);

      // A webhook by name: the agent resolves it with its own host's resolver.
      NetnsHosts.Result named = fetch("http://webhook.ns.svc:8080/id", 20);
      assertThat(named.exit()).as(named.output()).isZero();
      assertThat(count(named.output(), "a1") + count(named.output(), "a2")).isEqualTo(20);

      // An address that only a1 reaches: a dial that tries a2 first (network unreachable there)
      // moves on to a1, so every one of them succeeds.
      NetnsHosts.Result failover = fetch("http://" + ONLY_A1 + ":8080/id", 20);
      assertThat(failover.exit()).as(failover.output()).isZero();
      assertThat(count(failover.output(), "a1")).isEqualTo(20);
      assertThat(hosts.log("server-agents")).contains("could not dial " + ONLY_A1);

      // The cloud metadata address is never a default route's target.
      assertThat(connectStatus("http://169.254.169.254/latest/meta-data/")).isEqualTo("403");

      agent1.destroyForcibly().waitFor();
      await()
          .atMost(Duration.ofSeconds(60))
          .until(() -> routez(SERVICE + ":8080").contains("1 eligible agent(s)"));
      NetnsHosts.Result after = fetch("http://" + SERVICE + ":8080/id", 20);
      assertThat(after.exit()).as(after.output()).isZero();
      assertThat(count(after.output(), "a2")).isEqualTo(20);
    } catch (AssertionError | RuntimeException e) {
      throw new AssertionError(e.getMessage() + "\nserver log:\n" + hosts.log("server-agents"), e);
    } finally {
      server.destroyForcibly().waitFor();
    }
  }

  @Test
  void rejectAnswers503AtOnceAndTheServerCannotReachTheServiceItself() throws Exception {
    for (String[] policy : new String[][] {{"reject", "503"}, {"direct", "502"}}) {
      Process server = server(policy[0]);
      try {
        assertThat(connectStatus("http://" + SERVICE + ":8080/id"))
            .as("--default-route " + policy[0])
            .isEqualTo(policy[1]);
      } finally {
        server.destroyForcibly().waitFor();
      }
    }
  }
}
