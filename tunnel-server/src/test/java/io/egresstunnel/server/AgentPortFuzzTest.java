package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.FrameCodec;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.routing.EgressMode;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.UnpooledByteBufAllocator;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Abuse of the agent port while a real agent carries a checksummed transfer: garbage instead of an
 * upgrade, random websocket frames after an upgrade, and random tunnel frames after a valid hello.
 * Each bad connection ends alone; the real agent's session, its transfer and new dials go on, and
 * nothing leaks (the leak check runs after every test).
 */
class AgentPortFuzzTest {
  private static final int ROUNDS = 60;

  @Test
  void garbageUpgradesAndFuzzedFramesHurtNeitherTheRealAgentNorItsStreams() throws Exception {
    ch.qos.logback.classic.Logger sessionLog =
        (ch.qos.logback.classic.Logger)
            org.slf4j.LoggerFactory.getLogger(io.egresstunnel.proto.session.TunnelSession.class);
    ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent>
        protocolErrorLines = new ch.qos.logback.core.read.ListAppender<>();
    protocolErrorLines.start();
    sessionLog.addAppender(protocolErrorLines);
    try (TunnelFixture fx = new TunnelFixture(EgressMode.POD);
        TestTarget echo = new TestTarget("127.9.5.10", 0, TestTarget::echo)) {
      fx.startAgent(fx.agentConfig("node-z", "127.0.9.5", "127.9.5.0/24", EgressMode.POD));
      var session = fx.session("node-z");
      String target = echo.address() + ":" + echo.port();
      CompletableFuture<Transfers.Result> transfer =
          CompletableFuture.supplyAsync(
              () -> {
                try {
                  ConnectClient.Answer a = ConnectClient.connect(fx.proxy(), target);
                  try (Socket s = a.socket()) {
                    return Transfers.echo(s, 32L << 20, 5);
                  }
                } catch (Exception e) {
                  throw new IllegalStateException(e);
                }
              });

      SplittableRandom random = new SplittableRandom(42);
      for (int i = 0; i < ROUNDS; i++) {
        garbage(fx, random);
        randomWebsocketFrames(fx, random, i);
        helloThenRandomFrames(fx, random, i);
      }

      Transfers.Result r = transfer.get(60, TimeUnit.SECONDS);
      assertThat(r.receivedSha()).isEqualTo(r.sentSha());
      assertThat(fx.session("node-z")).isSameAs(session);
      // One log line per kind of protocol error, not one per bad session (rate-limited).
      assertThat(protocolErrorLines.list).hasSizeLessThan(20);
      await().atMost(Duration.ofSeconds(20)).until(() -> fx.server.registry().agentCount() == 1);
      ConnectClient.Answer again = ConnectClient.connect(fx.proxy(), target);
      assertThat(again.status()).isEqualTo(200);
      try (Socket s = again.socket()) {
        Transfers.Result small = Transfers.echo(s, 1 << 20, 6);
        assertThat(small.receivedSha()).isEqualTo(small.sentSha());
      }
    } finally {
      sessionLog.detachAppender(protocolErrorLines);
    }
  }

  private static Socket open(TunnelFixture fx) throws Exception {
    Socket s = new Socket();
    s.connect(fx.server.agentAddress(), 5_000);
    s.setSoTimeout(10_000);
    return s;
  }

  /** Random bytes where the upgrade request should be; the server answers or closes. */
  private static void garbage(TunnelFixture fx, SplittableRandom random) throws Exception {
    try (Socket s = open(fx)) {
      byte[] junk = new byte[random.nextInt(1, 4096)];
      random.nextBytes(junk);
      if (send(s.getOutputStream(), junk)) {
        s.shutdownOutput();
      }
      drain(s.getInputStream());
    }
  }

  /** A valid upgrade, then websocket frames with random payloads instead of a hello. */
  private static void randomWebsocketFrames(TunnelFixture fx, SplittableRandom random, int i)
      throws Exception {
    try (Socket s = open(fx)) {
      upgrade(s, "fuzz-ws-" + i);
      OutputStream out = s.getOutputStream();
      for (int f = 0; f < 3; f++) {
        byte[] payload = new byte[random.nextInt(0, 2048)];
        random.nextBytes(payload);
        if (!send(out, wsFrame(payload, random))) {
          break;
        }
      }
      drain(s.getInputStream());
    }
  }

  /** Writes {@code bytes}; false once the server has closed the connection (it may, any time). */
  private static boolean send(OutputStream out, byte[] bytes) {
    try {
      out.write(bytes);
      out.flush();
      return true;
    } catch (java.io.IOException closedByServer) {
      return false;
    }
  }

  /** A valid upgrade and AGENT_HELLO, then tunnel frames of random bytes. */
  private static void helloThenRandomFrames(TunnelFixture fx, SplittableRandom random, int i)
      throws Exception {
    try (Socket s = open(fx)) {
      upgrade(s, "fuzz-hello-" + i);
      AgentHello hello =
          new AgentHello(
              Limits.MIN_VERSION,
              Limits.MAX_VERSION,
              0,
              Limits.DEFAULT_INITIAL_WINDOW,
              Limits.DEFAULT_MAX_FRAME_PAYLOAD,
              10250,
              "fuzz-hello-" + i,
              List.of(),
              List.of());
      ByteBuf encoded = FrameCodec.encode(UnpooledByteBufAllocator.DEFAULT, hello);
      byte[] helloBytes = ByteBufUtil.getBytes(encoded);
      encoded.release();
      OutputStream out = s.getOutputStream();
      send(out, wsFrame(helloBytes, random));
      for (int f = 0; f < 3; f++) {
        byte[] payload = new byte[random.nextInt(9, 512)];
        random.nextBytes(payload);
        if (random.nextBoolean()) {
          // A well-formed header (length, a type that is often a known one, flags, a small stream
          // id) over a random body: the decoder gets past the header into each frame's fields.
          int body = payload.length - Limits.HEADER_SIZE;
          payload[0] = (byte) (body >> 16);
          payload[1] = (byte) (body >> 8);
          payload[2] = (byte) body;
          payload[3] = (byte) random.nextInt(0, 12);
          payload[4] = 0;
          payload[5] = 0;
          payload[6] = 0;
          payload[7] = 0;
          payload[8] = (byte) random.nextInt(0, 4);
        }
        if (!send(out, wsFrame(payload, random))) {
          break;
        }
      }
      drain(s.getInputStream());
    }
  }

  private static void upgrade(Socket s, String node) throws Exception {
    String response = AgentAuthenticationTest.upgrade(s, null, node);
    assertThat(response).startsWith("HTTP/1.1 101");
  }

  /** A masked binary websocket frame, as a client sends it. */
  private static byte[] wsFrame(byte[] payload, SplittableRandom random) {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.write(0x82); // FIN, binary
    if (payload.length < 126) {
      b.write(0x80 | payload.length);
    } else {
      b.write(0x80 | 126);
      b.write(payload.length >> 8);
      b.write(payload.length & 0xff);
    }
    byte[] mask = new byte[4];
    random.nextBytes(mask);
    b.writeBytes(mask);
    for (int i = 0; i < payload.length; i++) {
      b.write(payload[i] ^ mask[i & 3]);
    }
    return b.toByteArray();
  }

  /** Reads until the server closes (or 10 s pass); what it says does not matter here. */
  private static void drain(InputStream in) {
    try {
      byte[] buf = new byte[4096];
      while (in.read(buf) >= 0) {
        // until the end
      }
    } catch (Exception closedOrTimedOut) {
      // a reset or the timeout ends it too
    }
  }

  static String ascii(byte[] b) {
    return new String(b, StandardCharsets.ISO_8859_1);
  }
}
