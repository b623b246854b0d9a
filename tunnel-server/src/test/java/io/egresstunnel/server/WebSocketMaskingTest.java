package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.routing.EgressMode;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * What {@code --websocket-masking} puts on the wire, read by a relay between agent and server that
 * parses every agent → server frame header: {@code auto} masks the hello and nothing after the
 * server's hello accepts unmasked frames, {@code always} masks every frame, {@code never} none. The
 * bytes of an echo through the tunnel arrive intact in each case.
 */
class WebSocketMaskingTest {
  private TunnelFixture fx;
  private TestTarget echo;
  private FrameWatcher watcher;

  @BeforeEach
  void start() throws Exception {
    fx = new TunnelFixture(EgressMode.POD);
    echo = new TestTarget("127.4.1.10", 0, TestTarget::echo);
    watcher = new FrameWatcher(fx.server.agentAddress());
  }

  @AfterEach
  void stop() throws Exception {
    fx.close();
    echo.close();
    watcher.close();
  }

  @ParameterizedTest
  @EnumSource(AgentConfig.Masking.class)
  void agentFramesAreMaskedAsConfiguredAndTheBytesArriveIntact(AgentConfig.Masking masking)
      throws Exception {
    fx.startAgent(
        fx.agentConfig("node-m", "127.4.0.1", "127.4.1.0/24", EgressMode.POD)
            .withServers(List.of(watcher.url()))
            .withMasking(masking));
    ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), echo.address() + ":" + echo.port());
    assertThat(a.status()).isEqualTo(200);
    Transfers.Result r;
    try (Socket s = a.socket()) {
      r = Transfers.echo(s, 4L << 20, 16);
    }
    assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    assertThat(r.received()).isEqualTo(4L << 20);

    List<Boolean> masks = watcher.masks();
    // The hello, then the echoed 4 MiB in frames no larger than the maximum payload.
    assertThat(masks.size()).isGreaterThan(16);
    List<Boolean> afterHello = masks.subList(1, masks.size());
    switch (masking) {
      case AUTO -> {
        assertThat(masks.get(0)).as("the hello, before the server agreed").isTrue();
        assertThat(afterHello).as("frames after the server's hello").containsOnly(false);
      }
      case ALWAYS -> assertThat(masks).containsOnly(true);
      case NEVER -> assertThat(masks).containsOnly(false);
    }
  }

  /**
   * A TCP relay to the server's agent listener. Server → agent bytes are copied as they come; agent
   * → server bytes are copied too, and past the upgrade request each websocket frame header is
   * parsed and its mask bit recorded.
   */
  private static final class FrameWatcher implements AutoCloseable {
    private final ServerSocket listener;
    private final InetSocketAddress server;
    private final ExecutorService pool = Executors.newCachedThreadPool();
    private final List<Boolean> masks = new ArrayList<>();

    FrameWatcher(InetSocketAddress server) throws IOException {
      this.server = server;
      listener = new ServerSocket(0, 8, server.getAddress());
      pool.execute(this::accept);
    }

    URI url() {
      return URI.create("ws://127.0.0.1:" + listener.getLocalPort());
    }

    synchronized List<Boolean> masks() {
      return List.copyOf(masks);
    }

    private void accept() {
      while (!listener.isClosed()) {
        try {
          Socket agent = listener.accept();
          Socket upstream = new Socket(server.getAddress(), server.getPort());
          pool.execute(() -> copy(upstream, agent, false));
          pool.execute(() -> copy(agent, upstream, true));
        } catch (IOException e) {
          return;
        }
      }
    }

    private void copy(Socket from, Socket to, boolean parse) {
      try (from;
          to) {
        InputStream in = from.getInputStream();
        OutputStream out = to.getOutputStream();
        if (!parse) {
          in.transferTo(out);
          return;
        }
        DataInputStream data = new DataInputStream(in);
        skipRequestHead(data, out);
        byte[] buf = new byte[64 * 1024];
        while (true) {
          int b0 = data.read();
          if (b0 < 0) {
            return;
          }
          int b1 = data.readUnsignedByte();
          out.write(b0);
          out.write(b1);
          long length = b1 & 0x7f;
          if (length == 126) {
            length = data.readUnsignedShort();
            out.write((int) (length >>> 8));
            out.write((int) length);
          } else if (length == 127) {
            length = data.readLong();
            for (int i = 7; i >= 0; i--) {
              out.write((int) (length >>> (8 * i)));
            }
          }
          boolean masked = (b1 & 0x80) != 0;
          long rest = length + (masked ? 4 : 0);
          while (rest > 0) {
            int n = data.read(buf, 0, (int) Math.min(buf.length, rest));
            if (n < 0) {
              return;
            }
            out.write(buf, 0, n);
            rest -= n;
          }
          out.flush();
          synchronized (this) {
            masks.add(masked);
          }
        }
      } catch (IOException e) {
        // the peer went away: the test asserts on what was seen
      }
    }

    /** Copies the HTTP upgrade request through its blank line. */
    private static void skipRequestHead(DataInputStream in, OutputStream out) throws IOException {
      int matched = 0;
      byte[] end = {'\r', '\n', '\r', '\n'};
      while (matched < end.length) {
        int b = in.readUnsignedByte();
        out.write(b);
        matched = b == end[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
      }
      out.flush();
    }

    @Override
    public void close() throws IOException {
      listener.close();
      pool.shutdownNow();
    }
  }
}
