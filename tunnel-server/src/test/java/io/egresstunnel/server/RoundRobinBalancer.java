package io.egresstunnel.server;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP load balancer for tests, as a Kubernetes Service in front of several tunnel-servers would
 * be: on 127.0.0.1, each accepted connection goes to the next backend in turn. Blocking sockets,
 * two threads per connection; a backend that refuses closes the client's connection.
 */
final class RoundRobinBalancer implements AutoCloseable {
  private final ServerSocket server;
  private final ExecutorService pool = Executors.newCachedThreadPool();
  private final Set<Socket> sockets = ConcurrentHashMap.newKeySet();
  private final AtomicInteger next = new AtomicInteger();
  private volatile List<InetSocketAddress> backends;

  /** Connections accepted so far. */
  final AtomicInteger accepted = new AtomicInteger();

  /** Client connections relayed now. */
  final AtomicInteger open = new AtomicInteger();

  RoundRobinBalancer(List<InetSocketAddress> backends) throws IOException {
    this.backends = List.copyOf(backends);
    server = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
    pool.execute(this::acceptLoop);
  }

  int port() {
    return server.getLocalPort();
  }

  /** Sends new connections to these backends from now on. */
  void backends(List<InetSocketAddress> newBackends) {
    backends = List.copyOf(newBackends);
  }

  private void acceptLoop() {
    while (!server.isClosed()) {
      Socket client;
      try {
        client = server.accept();
      } catch (IOException e) {
        return; // closed
      }
      accepted.incrementAndGet();
      List<InetSocketAddress> b = backends;
      InetSocketAddress backend = b.get(Math.floorMod(next.getAndIncrement(), b.size()));
      sockets.add(client);
      pool.execute(() -> relay(client, backend));
    }
  }

  private void relay(Socket client, InetSocketAddress backendAddress) {
    Socket backend = new Socket();
    sockets.add(backend);
    open.incrementAndGet();
    try {
      backend.connect(backendAddress, 5_000);
      AtomicInteger directions = new AtomicInteger(2);
      pool.execute(() -> pump(client, backend, directions));
      pump(backend, client, directions);
    } catch (IOException e) {
      closeBoth(client, backend);
    }
  }

  /** Copies until EOF, then half-closes; the second direction to finish closes both sockets. */
  private void pump(Socket from, Socket to, AtomicInteger directions) {
    try {
      InputStream in = from.getInputStream();
      OutputStream out = to.getOutputStream();
      byte[] buf = new byte[64 * 1024];
      for (int n; (n = in.read(buf)) >= 0; ) {
        out.write(buf, 0, n);
      }
      to.shutdownOutput();
      if (directions.decrementAndGet() == 0) {
        closeBoth(from, to);
      }
    } catch (IOException e) {
      closeBoth(from, to);
    }
  }

  private void closeBoth(Socket a, Socket b) {
    boolean first = sockets.remove(a) | sockets.remove(b);
    close(a);
    close(b);
    if (first) {
      open.decrementAndGet();
    }
  }

  private static void close(Socket s) {
    try {
      s.close();
    } catch (IOException e) {
      // already closed
    }
  }

  @Override
  public void close() throws Exception {
    server.close();
    for (Socket s : sockets) {
      close(s);
    }
    pool.shutdownNow();
    pool.awaitTermination(10, TimeUnit.SECONDS);
  }
}
