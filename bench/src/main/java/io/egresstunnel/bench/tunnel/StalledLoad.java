package io.egresstunnel.bench.tunnel;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Stalled readers beside a fast stream: {@code --stalled} CONNECTs whose targets send without end
 * and whose clients read nothing, then one download of {@code --mib} MiB, checksummed, through the
 * same server and agent. Prints the fast stream's throughput with the stalled ones beside it and
 * alone (the baseline, in the same run), and how much the stalled streams made the server and agent
 * hold (Netty's buffer memory, from their /metrics): the credit window bounds it.
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar io.egresstunnel.bench.tunnel.StalledLoad
 * --proxy 127.0.0.1:8090 --target-host 127.0.0.2 --stalled 1000 --mib 512 --server-admin
 * 127.0.0.1:8092 --agent-admin 127.0.0.1:8093}
 */
public final class StalledLoad {
  private StalledLoad() {}

  public static void main(String[] args) throws Exception {
    java.util.Map<String, String> a = new java.util.TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      a.put(args[i], args[i + 1]);
    }
    if (!a.containsKey("--proxy")) {
      System.err.println("StalledLoad: --proxy HOST:PORT is required (see the class comment)");
      System.exit(2);
    }
    String[] p = a.get("--proxy").split(":");
    InetSocketAddress proxy = new InetSocketAddress(p[0], Integer.parseInt(p[1]));
    String host = a.getOrDefault("--target-host", "127.0.0.2");
    int stalled = Integer.parseInt(a.getOrDefault("--stalled", "1000"));
    long bytes = Long.parseLong(a.getOrDefault("--mib", "512")) << 20;

    try (ServerSocket source = new ServerSocket()) {
      source.bind(new InetSocketAddress(host, 0), 4096);
      Thread acceptor = new Thread(() -> serve(source));
      acceptor.setDaemon(true);
      acceptor.start();
      String target = host + ":" + source.getLocalPort();

      double alone = download(proxy, target, bytes);
      long serverBefore = netty(a.get("--server-admin"));
      long agentBefore = netty(a.get("--agent-admin"));
      List<Socket> stalls = new ArrayList<>();
      for (int i = 0; i < stalled; i++) {
        Socket s = connect(proxy, target, 16 * 1024);
        s.getOutputStream().write(0); // "send without end", and then read nothing
        stalls.add(s);
      }
      // Wait until every stalled stream is full: nothing more reaches the clients.
      long last = -1;
      for (long now = toClients(a.get("--server-admin"));
          now != last;
          now = toClients(a.get("--server-admin"))) {
        last = now;
        Thread.sleep(1000);
      }
      Thread.sleep(Long.parseLong(a.getOrDefault("--hold-seconds", "0")) * 1000);
      long serverHeld = netty(a.get("--server-admin")) - serverBefore;
      long agentHeld = netty(a.get("--agent-admin")) - agentBefore;
      double beside = download(proxy, target, bytes);
      System.out.printf(
          "fast stream: %.0f MB/s alone, %.0f MB/s beside %d stalled readers (%.2fx)%n",
          alone / 1e6, beside / 1e6, stalled, beside / alone);
      System.out.printf(
          "held for the stalled streams: server %.1f MiB (%.0f KiB each), agent %.1f MiB (%.0f KiB"
              + " each)%n",
          serverHeld / 1048576.0,
          serverHeld / 1024.0 / stalled,
          agentHeld / 1048576.0,
          agentHeld / 1024.0 / stalled);
      for (Socket s : stalls) {
        s.close();
      }
    }
  }

  /**
   * Each connection's first byte says what it wants: 0 = send without end (a stalled reader's
   * target), 1 = send the next 8-byte count of bytes, seeded, then close.
   */
  private static void serve(ServerSocket source) {
    try {
      while (true) {
        Socket s = source.accept();
        Thread t =
            new Thread(
                () -> {
                  try (s) {
                    InputStream in = s.getInputStream();
                    OutputStream out = s.getOutputStream();
                    int kind = in.read();
                    if (kind == 0) {
                      // A stalled stream's target: a small send buffer, so that this test's
                      // own kernel buffers do not exhaust the machine's TCP memory.
                      s.setSendBufferSize(64 * 1024);
                    }
                    byte[] chunk = new byte[64 * 1024];
                    new SplittableRandom(9).nextBytes(chunk);
                    if (kind == 0) {
                      while (true) {
                        out.write(chunk);
                      }
                    }
                    long n = new java.io.DataInputStream(in).readLong();
                    for (long left = n; left > 0; left -= chunk.length) {
                      out.write(chunk, 0, (int) Math.min(chunk.length, left));
                    }
                  } catch (Exception closed) {
                    // the client went away
                  }
                });
        t.setDaemon(true);
        t.start();
      }
    } catch (Exception closed) {
      // done
    }
  }

  private static Socket connect(InetSocketAddress proxy, String target) throws Exception {
    return connect(proxy, target, 0);
  }

  /**
   * A CONNECT; {@code receiveBuffer} > 0 keeps the kernel from absorbing much for a stalled one.
   */
  private static Socket connect(InetSocketAddress proxy, String target, int receiveBuffer)
      throws Exception {
    Socket s = new Socket();
    if (receiveBuffer > 0) {
      s.setReceiveBufferSize(receiveBuffer);
    }
    s.connect(proxy, 10_000);
    s.getOutputStream()
        .write(
            ("CONNECT " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
    byte[] head = s.getInputStream().readNBytes(39);
    String line = new String(head, StandardCharsets.US_ASCII);
    if (!line.startsWith("HTTP/1.1 200")) {
      throw new IllegalStateException(line.strip());
    }
    return s;
  }

  /** Downloads {@code bytes} through the tunnel, checks them, returns bytes per second. */
  private static double download(InetSocketAddress proxy, String target, long bytes)
      throws Exception {
    try (Socket s = connect(proxy, target)) {
      OutputStream out = s.getOutputStream();
      out.write(1);
      new java.io.DataOutputStream(out).writeLong(bytes);
      byte[] chunk = new byte[64 * 1024];
      new SplittableRandom(9).nextBytes(chunk);
      MessageDigest want = MessageDigest.getInstance("SHA-256");
      MessageDigest got = MessageDigest.getInstance("SHA-256");
      for (long left = bytes; left > 0; left -= chunk.length) {
        want.update(chunk, 0, (int) Math.min(chunk.length, left));
      }
      InputStream in = s.getInputStream();
      byte[] buf = new byte[256 * 1024];
      long start = System.nanoTime();
      long n = 0;
      for (int r; (r = in.read(buf)) > 0; ) {
        got.update(buf, 0, r);
        n += r;
      }
      double secs = (System.nanoTime() - start) / 1e9;
      if (n != bytes || !Arrays.equals(want.digest(), got.digest())) {
        throw new IllegalStateException("the fast stream lost bytes: " + n + " of " + bytes);
      }
      return bytes / secs;
    }
  }

  /** Netty's direct buffer memory of a process, from its /metrics; 0 without an address. */
  private static long netty(String admin) throws Exception {
    return (long) metric(admin, "netty_memory_bytes{type=\"direct\"}");
  }

  /** Payload bytes the server has sent towards clients so far. */
  private static long toClients(String admin) throws Exception {
    return (long) metric(admin, "bytes_total{direction=\"to_client\",route=\"agent\"}");
  }

  private static double metric(String admin, String series) throws Exception {
    if (admin == null) {
      return 0;
    }
    String body =
        java.net.http.HttpClient.newHttpClient()
            .send(
                java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create("http://" + admin + "/metrics"))
                    .build(),
                java.net.http.HttpResponse.BodyHandlers.ofString())
            .body();
    for (String line : body.split("\n")) {
      if (line.contains(series)) {
        return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return 0;
  }
}
