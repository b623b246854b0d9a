package io.egresstunnel.bench.demo;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;

/**
 * The demo's client side (bin/demo starts the server and the agents as real processes first):
 * serves a small HTTP "kubelet" on each node address, then sends requests exactly as the
 * kube-apiserver's egress selector does (CONNECT, then HTTP through the tunnel), prints one line
 * per request and a bulk-transfer figure, and exits non-zero if any request did not go as expected.
 * For each request it shows the route {@code /routez} predicts beside the process whose dial
 * counter moved (an agent, or the server dialling directly), and at the end every process's byte
 * counters, read from their {@code /metrics} (and the server's {@code /status} for its bytes per
 * node), which must agree.
 *
 * <p>Usage: {@code DemoClient [--kubelet-port N] [--agent-admin-port N] PROXY_HOST:PORT
 * ADMIN_HOST:PORT NODE=ADDRESS...}. The kubelet port defaults to 10250; each agent's admin listener
 * is on its node address at the agent admin port (default: the proxy's port + 3, as bin/demo sets
 * it up).
 */
public final class DemoClient {
  private static final long BULK_BYTES = 1L << 30;
  private static final int STREAMING_PORT = 10010;
  private static final String USAGE =
      "usage: DemoClient [--kubelet-port N] [--agent-admin-port N] PROXY_HOST:PORT ADMIN_HOST:PORT"
          + " NODE=ADDRESS...";

  private static int kubeletPort = 10250;

  private DemoClient() {}

  public static void main(String[] args) throws Exception {
    int agentAdminPort = -1;
    List<String> positional = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--kubelet-port" -> kubeletPort = port(args, ++i);
        case "--agent-admin-port" -> agentAdminPort = port(args, ++i);
        default -> positional.add(args[i]);
      }
    }
    if (positional.size() < 3) {
      System.err.println(USAGE);
      System.exit(2);
    }
    InetSocketAddress proxy = hostPort(positional.get(0));
    String admin = positional.get(1);
    if (agentAdminPort < 0) {
      agentAdminPort = proxy.getPort() + 3;
    }
    List<HttpServer> kubelets = new ArrayList<>();
    List<String[]> nodes = new ArrayList<>();
    Map<String, String> agentAdmins = new LinkedHashMap<>();
    int failures = 0;
    try {
      for (String arg : positional.subList(2, positional.size())) {
        String[] kv = arg.split("=", 2);
        nodes.add(kv);
        agentAdmins.put(kv[0], hostPortString(kv[1], agentAdminPort));
        kubelets.add(kubelet(kv[0], kv[1]));
      }
      DemoCounters counters = new DemoCounters(admin, agentAdmins);
      System.out.printf(
          "%-24s %-11s %-10s %-6s %9s %9s  %s%n",
          "target", "routez", "dialled by", "status", "bytes", "latency", "answer");
      String a = nodes.get(0)[1];
      String b = nodes.get(nodes.size() - 1)[1];
      String nodeB = nodes.get(nodes.size() - 1)[0];
      int closed = kubeletPort + 5 == STREAMING_PORT ? kubeletPort + 6 : kubeletPort + 5;
      String kubelet = ":" + kubeletPort;
      failures += request(proxy, admin, counters, hostPortString(a, kubeletPort), "/healthz", 200);
      failures += request(proxy, admin, counters, hostPortString(b, kubeletPort), "/pods", 200);
      failures += request(proxy, admin, counters, nodeB + kubelet, "/healthz", 200);
      failures +=
          request(
              proxy,
              admin,
              counters,
              hostPortString(a, kubeletPort),
              "/containerLogs/kube-system/coredns/coredns",
              200);
      failures +=
          request(
              proxy, admin, counters, hostPortString(b, STREAMING_PORT), "/exec/default/app", 502);
      failures += request(proxy, admin, counters, hostPortString(a, closed), "/metrics", 502);
      System.out.println();
      failures += bulk(proxy, hostPortString(a, kubeletPort));
      System.out.println();
      failures += byteCounters(counters.read(), agentAdmins);
    } catch (BindException e) {
      System.out.println(
          "demo: cannot serve a toy kubelet on port "
              + kubeletPort
              + " of every node address ("
              + e.getMessage()
              + "): a real kubelet may be listening there; choose another with --kubelet-port,"
              + " or other addresses with --node-a-ip and --node-b-ip");
      failures++;
    } finally {
      kubelets.forEach(k -> k.stop(0));
    }
    System.out.println(
        failures == 0
            ? "demo: all requests went as expected"
            : "demo: " + failures + " unexpected result(s)");
    System.exit(failures == 0 ? 0 : 1);
  }

  /**
   * Prints the byte counters of every process, and checks that they agree: the server's bytes
   * through agents are the sum of the agents' bytes, and the server's bytes for each node's session
   * are that node's agent's. Returns the number of disagreements.
   */
  private static int byteCounters(DemoCounters.Snapshot s, Map<String, String> agentAdmins) {
    System.out.println(
        "bytes counted by each process (payload; to target = from the client towards the target):");
    String row = "  %-46s %13s %13s%n";
    System.out.printf(row, "", "to target", "to client");
    System.out.printf(
        Locale.ROOT,
        row,
        "tunnel-server, through agents   (/metrics)",
        s.serverViaAgents().toTarget(),
        s.serverViaAgents().toClient());
    System.out.printf(
        Locale.ROOT,
        row,
        "tunnel-server, dialled directly (/metrics)",
        s.serverDirect().toTarget(),
        s.serverDirect().toClient());
    int failures = 0;
    long agentsToTarget = 0;
    long agentsToClient = 0;
    for (Map.Entry<String, DemoCounters.Bytes> e : s.agentBytes().entrySet()) {
      String node = e.getKey();
      DemoCounters.Bytes agent = e.getValue();
      DemoCounters.Bytes server =
          s.serverPerNode().getOrDefault(node, new DemoCounters.Bytes(0, 0));
      agentsToTarget += agent.toTarget();
      agentsToClient += agent.toClient();
      System.out.printf(
          Locale.ROOT,
          row,
          "tunnel-server, session of " + node + " (/status)",
          server.toTarget(),
          server.toClient());
      System.out.printf(
          Locale.ROOT,
          row,
          "tunnel-agent " + node + " (" + agentAdmins.get(node) + "/metrics)",
          agent.toTarget(),
          agent.toClient());
      if (!server.equals(agent)) {
        System.out.println("  the server and the agent of " + node + " disagree");
        failures++;
      }
    }
    if (agentsToTarget != s.serverViaAgents().toTarget()
        || agentsToClient != s.serverViaAgents().toClient()) {
      System.out.println(
          "  the server's bytes through agents are not the sum of the agents' bytes");
      failures++;
    }
    if (failures == 0) {
      System.out.println("  the server and the agents agree on every byte");
    }
    System.out.println();
    return failures;
  }

  /** A toy kubelet on {@code address} at the kubelet port that says which node it is. */
  private static HttpServer kubelet(String node, String address) throws IOException {
    HttpServer http =
        HttpServer.create(new InetSocketAddress(InetAddress.getByName(address), kubeletPort), 128);
    http.setExecutor(
        Executors.newFixedThreadPool(
            4,
            r -> {
              Thread t = new Thread(r, "kubelet-" + node);
              t.setDaemon(true);
              return t;
            }));
    http.createContext("/healthz", ex -> reply(ex, "ok from kubelet of " + node));
    http.createContext(
        "/pods", ex -> reply(ex, "{\"kind\":\"PodList\",\"node\":\"" + node + "\",\"items\":[]}"));
    http.createContext(
        "/containerLogs",
        ex -> {
          StringBuilder log = new StringBuilder();
          for (int i = 1; i <= 500; i++) {
            log.append("2026-11-23T12:00:")
                .append(String.format("%02d", i % 60))
                .append("Z [INFO] coredns on ")
                .append(node)
                .append(": line ")
                .append(i)
                .append('\n');
          }
          reply(ex, log.toString());
        });
    http.createContext(
        "/bulk",
        ex -> {
          ex.sendResponseHeaders(200, BULK_BYTES);
          byte[] chunk = new byte[128 * 1024];
          try (OutputStream out = ex.getResponseBody()) {
            for (long left = BULK_BYTES; left > 0; left -= chunk.length) {
              out.write(chunk, 0, (int) Math.min(chunk.length, left));
            }
          }
        });
    http.start();
    return http;
  }

  private static void reply(HttpExchange ex, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
    ex.sendResponseHeaders(200, bytes.length);
    try (OutputStream out = ex.getResponseBody()) {
      out.write(bytes);
    }
  }

  /** One apiserver-style request; prints a line; returns 1 if the status was not as expected. */
  private static int request(
      InetSocketAddress proxy,
      String admin,
      DemoCounters counters,
      String target,
      String path,
      int expected)
      throws Exception {
    String route = route(admin, target);
    DemoCounters.Snapshot before = counters.read();
    long start = System.nanoTime();
    try (Socket s = connect(proxy, target, 15_000)) {
      OutputStream out = s.getOutputStream();
      InputStream in = s.getInputStream();
      String head = readHead(in);
      int status = Integer.parseInt(head.substring(9, 12));
      String answer;
      long bytes;
      if (status == 200) {
        out.write(
            ("GET " + path + " HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        out.flush();
        byte[] response = in.readAllBytes();
        bytes = response.length;
        String text = new String(response, StandardCharsets.UTF_8);
        int bodyAt = text.indexOf("\r\n\r\n");
        answer = firstLine(bodyAt < 0 ? text : text.substring(bodyAt + 4));
      } else {
        byte[] body = in.readAllBytes();
        bytes = body.length;
        answer = firstLine(new String(body, StandardCharsets.UTF_8));
      }
      double ms = (System.nanoTime() - start) / 1e6;
      String dialledBy = counters.read().dialledBy(before);
      System.out.printf(
          Locale.ROOT,
          "%-24s %-11s %-10s %-6d %9d %7.1fms  %s%n",
          target,
          route,
          dialledBy,
          status,
          bytes,
          ms,
          answer);
      int failures = status == expected ? 0 : 1;
      String predicted = route.startsWith("via ") ? route.substring(4) : route;
      if (!predicted.equals(dialledBy)) {
        System.out.println(
            "  /routez predicted " + route + ", but the dial counters say " + dialledBy);
        failures++;
      }
      return failures;
    }
  }

  /** A socket to the proxy that has sent the apiserver's CONNECT for {@code target}. */
  private static Socket connect(InetSocketAddress proxy, String target, int readTimeoutMillis)
      throws IOException {
    Socket s = new Socket();
    s.connect(proxy, 5_000);
    s.setSoTimeout(readTimeoutMillis);
    OutputStream out = s.getOutputStream();
    out.write(
        ("CONNECT " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII));
    out.flush();
    return s;
  }

  /** Downloads the bulk object through the tunnel and prints the rate. */
  private static int bulk(InetSocketAddress proxy, String target) throws Exception {
    try (Socket s = connect(proxy, target, 60_000)) {
      OutputStream out = s.getOutputStream();
      InputStream in = s.getInputStream();
      if (!readHead(in).startsWith("HTTP/1.1 200")) {
        System.out.println("bulk: CONNECT failed");
        return 1;
      }
      out.write(
          ("GET /bulk HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      long start = System.nanoTime();
      byte[] buf = new byte[256 * 1024];
      long total = 0;
      for (int n; (n = in.read(buf)) > 0; ) {
        total += n;
      }
      double secs = (System.nanoTime() - start) / 1e9;
      System.out.printf(
          Locale.ROOT,
          "bulk: %d MiB from %s through the tunnel in %.2f s = %.0f MB/s (%.2f Gbit/s)%n",
          total >> 20,
          target,
          secs,
          total / secs / 1e6,
          total * 8 / secs / 1e9);
      return total >= BULK_BYTES ? 0 : 1;
    }
  }

  /** The route /routez gives, without its explanation in parentheses (the column stays short). */
  private static String route(String admin, String target) {
    String r = routez(admin, target);
    int why = r.indexOf(" (");
    return why > 0 ? r.substring(0, why) : r;
  }

  private static String routez(String admin, String target) {
    try {
      HttpResponse<String> r =
          HttpClient.newHttpClient()
              .send(
                  HttpRequest.newBuilder(URI.create("http://" + admin + "/routez?target=" + target))
                      .build(),
                  HttpResponse.BodyHandlers.ofString());
      return r.body().trim();
    } catch (Exception e) {
      return "?";
    }
  }

  private static String readHead(InputStream in) throws IOException {
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    int matched = 0;
    while (matched < 4) {
      int b = in.read();
      if (b < 0) {
        break;
      }
      head.write(b);
      matched = (b == (matched % 2 == 0 ? '\r' : '\n')) ? matched + 1 : (b == '\r' ? 1 : 0);
    }
    return head.toString(StandardCharsets.US_ASCII);
  }

  private static String firstLine(String s) {
    String line = s.strip().lines().findFirst().orElse("");
    return line.length() > 60 ? line.substring(0, 57) + "..." : line;
  }

  private static int port(String[] args, int i) {
    if (i >= args.length) {
      System.err.println(USAGE);
      System.exit(2);
    }
    return Integer.parseInt(args[i]);
  }

  /** host:port, with brackets around an IPv6 address. */
  private static String hostPortString(String host, int port) {
    return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
  }

  private static InetSocketAddress hostPort(String s) {
    int colon = s.lastIndexOf(':');
    return new InetSocketAddress(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
  }
}
