package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.Dial;
import io.egresstunnel.proto.DialResult;
import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.Fin;
import io.egresstunnel.proto.Frame;
import io.egresstunnel.proto.FrameCodec;
import io.egresstunnel.proto.FrameType;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.ServerHello;
import io.egresstunnel.proto.WindowUpdate;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.net.WebSocketHeader;
import io.egresstunnel.routing.EgressMode;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.util.ReferenceCountUtil;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The server's splice tap follows websocket frame boundaries in whatever pieces the bytes arrive.
 * This test's own agent, on a plain socket, answers a dial and then sends the stream's bytes as
 * unmasked DATA frames of random sizes, each written in random pieces with pauses between them, so
 * that the server's reads end inside websocket headers, inside frame headers, inside payloads, and
 * between frames, with small frames among large ones. Every byte must reach the client in order,
 * and the server must have spliced some of them (a tap that lost track would corrupt the stream or
 * end the session).
 */
class SpliceBoundariesTest {
  private static final long BYTES = 12L << 20;

  @ParameterizedTest(name = "seed {0}")
  @ValueSource(longs = {45, 46, 47, 48})
  void framesCutAtEveryKindOfBoundaryArriveWhole(long seed) {
    assumeTrue(Transport.isNative(), "splicing needs epoll; this run uses " + Transport.name());
    assertTimeoutPreemptively(
        Duration.ofSeconds(120),
        () -> {
          try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
              RawAgent raw =
                  RawAgent.connect(fx, "node-raw", List.of(Cidr.parse("127.1.45.0/24")))) {
            CompletableFuture<String> received =
                CompletableFuture.supplyAsync(
                    () -> {
                      try {
                        ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), "127.1.45.1:80");
                        assertThat(a.status()).isEqualTo(200);
                        try (Socket client = a.socket()) {
                          client.setSoTimeout(60_000);
                          MessageDigest md = Transfers.sha256();
                          assertThat(Transfers.readAll(client.getInputStream(), md))
                              .isEqualTo(BYTES);
                          return Transfers.hex(md);
                        }
                      } catch (Exception e) {
                        throw new IllegalStateException(e);
                      }
                    });
            Dial dial = (Dial) raw.next();
            raw.send(encode(new DialResult(dial.streamId(), DialStatus.OK, "")));
            raw.startReadingWindowUpdates();

            String sent = raw.sendData(dial.streamId(), new SplittableRandom(seed));
            raw.send(encode(new Fin(dial.streamId())));
            assertThat(received.get(60, TimeUnit.SECONDS)).isEqualTo(sent);
            assertThat(
                    MetricsTest.Scrape.of(fx.server.metrics().registry())
                        .get("egress_tunnel_server_spliced_bytes_total", "direction", "to_client"))
                .isPositive();
            assertThat(fx.server.registry().session("node-raw")).isNotNull();
          }
        });
  }

  /**
   * A websocket header whose 64-bit length has its top bit set, right behind the hello: the decoder
   * rejects it and the server closes that connection, while the tap in front of the decoder neither
   * loops nor waits on it; the server goes on serving.
   */
  @Test
  void anInvalidLengthEndsTheConnectionAndNothingElse() {
    assumeTrue(Transport.isNative(), "splicing needs epoll; this run uses " + Transport.name());
    assertTimeoutPreemptively(
        Duration.ofSeconds(30),
        () -> {
          try (TunnelFixture fx = new TunnelFixture(EgressMode.POD)) {
            for (int round = 0; round < 2; round++) {
              try (RawAgent raw = RawAgent.connect(fx, "node-bad-" + round, List.of())) {
                byte[] hostile = new byte[64];
                hostile[0] = (byte) 0x82;
                hostile[1] = 127;
                // Length -10 as a signed 64-bit number: minus this header's own length, which
                // would send a parser that trusted it back to the same header, for ever.
                for (int i = 2; i < 10; i++) {
                  hostile[i] = (byte) 0xFF;
                }
                hostile[9] = (byte) 0xF6;
                raw.out.write(hostile);
                raw.out.flush();
                try {
                  while (raw.in.read() >= 0) {
                    // the close frame, if any; then the end
                  }
                } catch (IOException reset) {
                  // closed with a reset: also an end
                }
              }
            }
            ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), "127.1.46.1:80");
            // Nothing listens there: what matters is that the server still answers at once.
            assertThat(a.status()).as("the server still answers CONNECT").isBetween(400, 599);
          }
        });
  }

  private static byte[] encode(Frame frame) {
    ByteBuf b = FrameCodec.encode(UnpooledByteBufAllocator.DEFAULT, frame);
    try {
      return ByteBufUtil.getBytes(b);
    } finally {
      b.release();
    }
  }

  /** An unmasked binary websocket frame around {@code payload}. */
  static byte[] wsFrame(byte[] payload) {
    ByteBuf frame = Unpooled.buffer(WebSocketHeader.size(payload.length, false) + payload.length);
    WebSocketHeader.write(frame, WebSocketHeader.FINAL_BINARY, false, payload.length);
    frame.writeBytes(payload);
    return ByteBufUtil.getBytes(frame);
  }

  /** The agent end of a session, by hand: frames out, frames in, a send window. */
  private static final class RawAgent implements AutoCloseable {
    private final Socket socket;
    final OutputStream out;
    final DataInputStream in;
    int window;
    private final Object credit = new Object();

    private RawAgent(Socket socket) throws IOException {
      this.socket = socket;
      this.out = socket.getOutputStream();
      this.in = new DataInputStream(socket.getInputStream());
    }

    /**
     * Upgrades a connection to {@code fx}'s agent port for {@code node}, says an unmasked hello for
     * {@code podCidrs} and reads the server's hello, which sets the send window.
     */
    static RawAgent connect(TunnelFixture fx, String node, List<Cidr> podCidrs) throws Exception {
      Socket s = new Socket();
      s.connect(fx.server.agentAddress(), 5_000);
      s.setSoTimeout(20_000);
      s.setTcpNoDelay(true);
      assertThat(AgentAuthenticationTest.upgrade(s, null, node)).startsWith("HTTP/1.1 101");
      OutputStream out = s.getOutputStream();
      out.write(
          wsFrame(
              encode(
                  new AgentHello(
                      Limits.MIN_VERSION,
                      Limits.MAX_VERSION,
                      AgentHello.CAP_UNMASKED_FRAMES,
                      Limits.DEFAULT_INITIAL_WINDOW,
                      Limits.DEFAULT_MAX_FRAME_PAYLOAD,
                      10250,
                      node,
                      List.of(),
                      podCidrs))));
      out.flush();
      RawAgent raw = new RawAgent(s);
      raw.window = ((ServerHello) raw.next()).initialWindow();
      return raw;
    }

    @Override
    public void close() throws IOException {
      socket.close();
    }

    void send(byte[] frame) throws IOException {
      out.write(wsFrame(frame));
      out.flush();
    }

    /** The next tunnel frame from the server; websocket control frames are skipped. */
    Frame next() throws IOException {
      while (true) {
        int b0 = in.readUnsignedByte();
        int b1 = in.readUnsignedByte();
        long len = b1 & 0x7F;
        if (len == 126) {
          len = in.readUnsignedShort();
        } else if (len == 127) {
          len = in.readLong();
        }
        byte[] payload = new byte[(int) len];
        in.readFully(payload);
        if ((b0 & 0x0F) != 0x2) {
          continue; // ping, pong
        }
        Frame f =
            FrameCodec.decode(Unpooled.wrappedBuffer(payload), Limits.MAX_FRAME_PAYLOAD_CEILING);
        if (f.type() == FrameType.DATA) {
          ReferenceCountUtil.release(f);
          continue;
        }
        return f;
      }
    }

    void startReadingWindowUpdates() {
      Thread t =
          new Thread(
              () -> {
                try {
                  while (true) {
                    if (next() instanceof WindowUpdate u) {
                      synchronized (credit) {
                        window += u.increment();
                        credit.notifyAll();
                      }
                    }
                  }
                } catch (IOException closed) {
                  // the test is over
                }
              },
              "raw-agent-reader");
      t.setDaemon(true);
      t.start();
    }

    /**
     * Sends {@link #BYTES} random bytes as DATA frames for {@code streamId} and answers their
     * SHA-256. Frame sizes run from 1 byte to the frame limit; each frame is written in pieces cut
     * at random, more often inside the first 19 bytes, where the headers are, with a pause after
     * some pieces so that the server reads them apart.
     */
    String sendData(int streamId, SplittableRandom random) throws Exception {
      MessageDigest md = Transfers.sha256();
      long left = BYTES;
      while (left > 0) {
        int n =
            (int)
                Math.min(
                    left,
                    random.nextInt(4) == 0
                        ? random.nextInt(1, 64)
                        : random.nextInt(16 * 1024, Limits.DEFAULT_MAX_FRAME_PAYLOAD + 1));
        synchronized (credit) {
          // As a real sender: never more than the credit. The receiver grants in batches, so the
          // credit may stay below a whole window for good.
          while (window == 0) {
            credit.wait(10_000);
          }
          n = Math.min(n, window);
          window -= n;
        }
        byte[] data = new byte[n];
        random.nextBytes(data);
        md.update(data);
        ByteBuf header = Unpooled.buffer(Limits.HEADER_SIZE);
        FrameCodec.writeHeader(header, FrameType.DATA, streamId, n);
        byte[] payload = new byte[Limits.HEADER_SIZE + n];
        header.readBytes(payload, 0, Limits.HEADER_SIZE);
        System.arraycopy(data, 0, payload, Limits.HEADER_SIZE, n);
        writeInPieces(wsFrame(payload), random);
        left -= n;
      }
      return Transfers.hex(md);
    }

    private void writeInPieces(byte[] frame, SplittableRandom random) throws Exception {
      int pos = 0;
      while (pos < frame.length) {
        int piece =
            random.nextInt(3) == 0
                ? random.nextInt(1, 20) // inside or just past the headers
                : random.nextInt(1, frame.length + 1);
        int end = Math.min(frame.length, pos + piece);
        out.write(frame, pos, end - pos);
        out.flush();
        pos = end;
        if (random.nextInt(4) == 0) {
          // Pacing, not waiting for something: give the server a moment to take what is there
          // before more comes, so that its reads end at this cut. No event says it has: a splice
          // in progress takes the bytes without a read.
          Thread.sleep(0, 200_000);
        }
      }
    }
  }
}
