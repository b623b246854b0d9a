package io.egresstunnel.server;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/** A blocking TCP target on a loopback address, one thread per connection, for tests. */
final class TestTarget implements AutoCloseable {
  /** What the target does with each accepted connection. */
  interface Behaviour {
    void serve(Socket socket) throws IOException;
  }

  private final ServerSocket server;
  private final ExecutorService pool = Executors.newCachedThreadPool();
  final AtomicInteger accepted = new AtomicInteger();

  TestTarget(String address, int port, Behaviour behaviour) throws IOException {
    server = new ServerSocket();
    server.setReuseAddress(true);
    server.bind(new InetSocketAddress(InetAddress.getByName(address), port), 512);
    pool.execute(
        () -> {
          while (!server.isClosed()) {
            try {
              Socket s = server.accept();
              accepted.incrementAndGet();
              pool.execute(
                  () -> {
                    try (s) {
                      behaviour.serve(s);
                    } catch (IOException e) {
                      // the peer went away; nothing to do
                    }
                  });
            } catch (IOException e) {
              return;
            }
          }
        });
  }

  int port() {
    return server.getLocalPort();
  }

  String address() {
    return server.getInetAddress().getHostAddress();
  }

  /** Echoes every byte; on EOF, shuts its output after the last byte. */
  static void echo(Socket s) throws IOException {
    InputStream in = s.getInputStream();
    OutputStream out = s.getOutputStream();
    byte[] buf = new byte[64 * 1024];
    for (int n; (n = in.read(buf)) > 0; ) {
      out.write(buf, 0, n);
    }
    out.flush();
    s.shutdownOutput();
  }

  @Override
  public void close() throws IOException {
    server.close();
    pool.shutdownNow();
  }
}
