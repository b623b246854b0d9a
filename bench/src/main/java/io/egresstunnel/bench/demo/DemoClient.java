package io.egresstunnel.bench.demo;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Executors;

/**
 * The demo's client side (bin/demo starts the server and the agents as real processes first):
 * serves a small HTTP "kubelet" on each node address, then sends requests exactly as the
 * kube-apiserver's egress selector does (CONNECT, then HTTP through the tunnel), prints one line
 * per request and a bulk-transfer figure, and exits non-zero if any request did not go as expected.
 *
 * <p>Usage: {@code DemoClient PROXY_HOST:PORT ADMIN_HOST:PORT node=ADDRESS...}
 */
public final class DemoClient {
  private static final int KUBELET_PORT = 10250;
  private static final long BULK_BYTES = 1L << 30;

  private DemoClient() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: DemoClient PROXY_HOST:PORT ADMIN_HOST:PORT NODE=ADDRESS...");
      System.exit(2);
    }
    InetSocketAddress proxy = hostPort(args[0]);
    String admin = args[1];
    List<HttpServer> kubelets = new ArrayList<>();
    List<String[]> nodes = new ArrayList<>();
    for (int i = 2; i < args.length; i++) {
      String[] kv = args[i].split("=", 2);
      nodes.add(kv);
      kubelets.add(kubelet(kv[0], kv[1]));
    }
    int failures = 0;
    try {
      System.out.printf(
          "%-28s %-14s %-7s %9s %9s  %s%n",
          "target", "route", "status", "bytes", "latency", "answer");
      String a = nodes.get(0)[1];
      String b = nodes.get(nodes.size() - 1)[1];
      String nodeB = nodes.get(nodes.size() - 1)[0];
      failures += request(proxy, admin, a + ":" + KUBELET_PORT, "/healthz", 200);
      failures += request(proxy, admin, b + ":" + KUBELET_PORT, "/pods", 200);
      failures += request(proxy, admin, nodeB + ":" + KUBELET_PORT, "/healthz", 200);
      failures +=
          request(
              proxy,
              admin,
              a + ":" + KUBELET_PORT,
              "/containerLogs/kube-system/coredns/coredns",
              200);
      failures += request(proxy, admin, b + ":10010", "/exec/default/app", 502);
      failures += request(proxy, admin, a + ":10255", "/metrics", 502);
      System.out.println();
      failures += bulk(proxy, a + ":" + KUBELET_PORT);
    } finally {
      kubelets.forEach(k -> k.stop(0));
    }
    System.out.println(
        failures == 0
            ? "demo: all requests went as expected"
            : "demo: " + failures + " unexpected result(s)");
    System.exit(failures == 0 ? 0 : 1);
  }

  /** A toy kubelet on {@code address}:10250 that says which node it is. */
  private static HttpServer kubelet(String node, String address) throws IOException {
    HttpServer http =
        HttpServer.create(new InetSocketAddress(InetAddress.getByName(address), KUBELET_PORT), 128);
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
      InetSocketAddress proxy, String admin, String target, String path, int expected)
      throws Exception {
    String route = route(admin, target);
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
      System.out.printf(
          Locale.ROOT,
          "%-28s %-14s %-7d %9d %7.1fms  %s%n",
          target,
          route,
          status,
          bytes,
          ms,
          answer);
      return status == expected ? 0 : 1;
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

  private static InetSocketAddress hostPort(String s) {
    int colon = s.lastIndexOf(':');
    return new InetSocketAddress(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
  }
}
