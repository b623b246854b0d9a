package io.egresstunnel.proto.net;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;
import static org.awaitility.Awaitility.await;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Certificate rotation without restart: a real TLS listener on loopback takes its handler from a
 * {@link ReloadingSslContext} while the files under it change; JDK TLS sockets connect to it.
 */
class ReloadingSslContextTest {
  private static final Duration POLL = Duration.ofMillis(50);
  private static final Duration AT_MOST = Duration.ofSeconds(10);
  private static final String DESCRIPTION = "test listener TLS";

  private static Identity one;
  private static Identity two;
  private static Identity three;

  @TempDir Path dir;

  private Path certFile;
  private Path keyFile;
  private final AtomicInteger builds = new AtomicInteger();
  private ReloadingSslContext reloading;
  private EventLoopGroup group;
  private Channel server;
  private final List<SSLSocket> clients = new ArrayList<>();

  @BeforeAll
  static void identities() throws Exception {
    one = Identity.selfSigned("one.test");
    two = Identity.selfSigned("two.test");
    three = Identity.selfSigned("three.test");
  }

  @AfterEach
  void tearDown() throws Exception {
    for (SSLSocket s : clients) {
      s.close();
    }
    if (reloading != null) {
      reloading.close();
    }
    if (server != null) {
      server.close().sync();
    }
    if (group != null) {
      group.shutdownGracefully(0, 2, TimeUnit.SECONDS).sync();
    }
  }

  @Test
  void buildsTheFirstContextFromTheFiles() throws Exception {
    writeFlat(one);
    reloading = load();

    assertThat(reloading.current()).isNotNull();
    assertThat(reloading.current().isServer()).isTrue();
    assertThat(builds).hasValue(1);
    assertThat(reloading.lastFailure()).isEmpty();
    assertThat(reloading.files()).containsExactly(certFile, keyFile);

    startServer();
    SSLSocket client = connect();
    assertThat(peer(client)).isEqualTo(one.cert);
    assertThat(echo(client, "hello")).isEqualTo("hello");
  }

  @Test
  void newConnectionsSeeTheNewCertificateWhileEarlierOnesKeepStreaming() throws Exception {
    writeFlat(one);
    reloading = load();
    startServer();
    SSLSocket before = connect();
    assertThat(peer(before)).isEqualTo(one.cert);
    assertThat(echo(before, "before rotation")).isEqualTo("before rotation");
    SslContext old = reloading.current();

    writeFlat(two);
    assertThat(reloading.reloadNow()).isTrue();

    assertThat(reloading.current()).isNotSameAs(old);
    assertThat(builds).hasValue(2);
    SSLSocket after = connect();
    X509Certificate seen = peer(after);
    assertThat(seen).isEqualTo(two.cert);
    assertThat(seen.getSubjectX500Principal().getName()).isEqualTo("CN=two.test");
    assertThat(seen.getSerialNumber()).isNotEqualTo(one.cert.getSerialNumber());
    assertThat(echo(after, "after rotation")).isEqualTo("after rotation");

    // The connection opened before the rotation keeps its engine, its certificate and its data.
    for (int i = 0; i < 3; i++) {
      assertThat(echo(before, "still streaming " + i)).isEqualTo("still streaming " + i);
    }
    assertThat(peer(before)).isEqualTo(one.cert);
  }

  @Test
  void aHalfWrittenKeyKeepsTheOldContextUntilTheFilesAreFixed() throws Exception {
    writeFlat(one);
    reloading = load();
    startServer();
    SslContext old = reloading.current();

    Files.writeString(certFile, two.certPem);
    Files.writeString(keyFile, two.keyPem.substring(0, two.keyPem.length() / 2));
    assertThat(reloading.reloadNow()).isFalse();

    assertThat(reloading.current()).isSameAs(old);
    assertThat(reloading.lastFailure()).isPresent();
    assertThat(peer(connect())).isEqualTo(one.cert);

    // Retried at the next check, and still refused while the files are broken.
    assertThat(reloading.reloadNow()).isFalse();
    assertThat(reloading.current()).isSameAs(old);

    Files.writeString(keyFile, two.keyPem);
    assertThat(reloading.reloadNow()).isTrue();
    assertThat(reloading.lastFailure()).isEmpty();
    assertThat(peer(connect())).isEqualTo(two.cert);
  }

  @Test
  void aHalfWrittenCertificateKeepsTheOldContext() throws Exception {
    writeFlat(one);
    reloading = load();
    startServer();
    SslContext old = reloading.current();

    Files.writeString(certFile, two.certPem.substring(0, two.certPem.length() - 40));
    Files.writeString(keyFile, two.keyPem);
    assertThat(reloading.reloadNow()).isFalse();

    assertThat(reloading.current()).isSameAs(old);
    assertThat(peer(connect())).isEqualTo(one.cert);
  }

  @Test
  void aKeyThatDoesNotMatchTheCertificateIsRefusedBeforeBuilding() throws Exception {
    writeFlat(one);
    reloading = load();
    startServer();
    SslContext old = reloading.current();

    // The JDK provider would build this pair and fail every handshake afterwards.
    Files.writeString(certFile, two.certPem);
    Files.writeString(keyFile, one.keyPem);
    assertThat(reloading.reloadNow()).isFalse();

    assertThat(reloading.current()).isSameAs(old);
    assertThat(builds).hasValue(1);
    assertThat(reloading.lastFailure())
        .hasValueSatisfying(
            r -> assertThat(r).contains("does not match").contains(keyFile.toString()));
    assertThat(peer(connect())).isEqualTo(one.cert);
  }

  @Test
  void aFailureIsLoggedOncePerDistinctContent() throws Exception {
    writeFlat(one);
    reloading = load();
    String garbage = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0w";

    ByteArrayOutputStream captured = new ByteArrayOutputStream();
    PrintStream originalErr = System.err;
    System.setErr(new PrintStream(captured, true, UTF_8));
    try {
      Files.writeString(keyFile, garbage);
      for (int i = 0; i < 3; i++) {
        assertThat(reloading.reloadNow()).isFalse();
      }
      Files.writeString(keyFile, garbage + "AAAA");
      for (int i = 0; i < 3; i++) {
        assertThat(reloading.reloadNow()).isFalse();
      }
    } finally {
      System.setErr(originalErr);
    }

    long warnings =
        captured
            .toString(UTF_8)
            .lines()
            .filter(l -> l.contains("WARN"))
            .filter(l -> l.contains(DESCRIPTION))
            .count();
    assertThat(warnings).isEqualTo(2);
    assertThat(builds).hasValue(1 + 6); // every check retries; only new content is logged
  }

  @Test
  void pollingPicksUpAKubernetesStyleSymlinkSwapByContent() throws Exception {
    // A mounted secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>, swapped atomically.
    Path first = writeSecretDir("..2025_01_01_00_00_00.1", one);
    Files.createSymbolicLink(dir.resolve("..data"), first.getFileName());
    certFile = Files.createSymbolicLink(dir.resolve("tls.crt"), Path.of("..data", "tls.crt"));
    keyFile = Files.createSymbolicLink(dir.resolve("tls.key"), Path.of("..data", "tls.key"));
    reloading = load();
    startServer();
    reloading.start(group);
    SslContext old = reloading.current();
    assertThat(peer(connect())).isEqualTo(one.cert);

    Path second = writeSecretDir("..2025_01_02_00_00_00.2", two);
    // Same mtimes as before: only the contents tell the change.
    for (String name : List.of("tls.crt", "tls.key")) {
      Files.setLastModifiedTime(
          second.resolve(name), Files.getLastModifiedTime(first.resolve(name)));
    }
    swapData(second);

    await().atMost(AT_MOST).until(() -> reloading.current() != old);
    assertThat(peer(connect())).isEqualTo(two.cert);
    assertThat(builds).hasValue(2);

    // After close() the files are no longer watched.
    reloading.close();
    SslContext closedWith = reloading.current();
    swapData(writeSecretDir("..2025_01_03_00_00_00.3", three));
    // Six poll intervals pass without a reload.
    await()
        .during(POLL.multipliedBy(6))
        .atMost(AT_MOST)
        .until(() -> reloading.current() == closedWith);
    assertThatThrownBy(() -> reloading.start(group)).isInstanceOf(IllegalStateException.class);
  }

  @Test
  void unchangedFilesAreNotRebuiltEvenWhenTouched() throws Exception {
    writeFlat(one);
    reloading = load();
    SslContext first = reloading.current();

    assertThat(reloading.reloadNow()).isFalse();
    assertThat(reloading.reloadNow()).isFalse();
    // Rewritten with the same bytes and a newer mtime: still no change.
    writeFlat(one);
    FileTime later = FileTime.fromMillis(System.currentTimeMillis() + 3_600_000);
    Files.setLastModifiedTime(certFile, later);
    Files.setLastModifiedTime(keyFile, later);
    assertThat(reloading.reloadNow()).isFalse();

    assertThat(builds).hasValue(1);
    assertThat(reloading.current()).isSameAs(first);
  }

  @Test
  void startupFailureNamesTheFiles() throws Exception {
    certFile = dir.resolve("tls.crt");
    keyFile = dir.resolve("missing.key");
    Files.writeString(certFile, one.certPem);

    assertThatThrownBy(this::load)
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(DESCRIPTION)
        .hasMessageContaining(certFile.toString())
        .hasMessageContaining(keyFile.toString());
  }

  @Test
  void startupFailsOnAMismatchedKeyAndOnAnOversizedFile() throws Exception {
    certFile = dir.resolve("tls.crt");
    keyFile = dir.resolve("tls.key");
    Files.writeString(certFile, one.certPem);
    Files.writeString(keyFile, two.keyPem);
    assertThatThrownBy(this::load)
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(certFile.toString())
        .hasMessageContaining("does not match");

    Files.writeString(keyFile, one.keyPem);
    Files.write(certFile, new byte[ReloadingSslContext.MAX_FILE_SIZE + 1]);
    assertThatThrownBy(this::load)
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining(certFile.toString())
        .hasMessageContaining("larger than");
    assertThat(builds).hasValue(0);
  }

  @Test
  void rejectsBadArguments() {
    ReloadingSslContext.ContextBuilder never = () -> fail("must not build");
    List<Path> files = List.of(dir.resolve("a"));
    assertThatThrownBy(() -> ReloadingSslContext.load(DESCRIPTION, List.of(), never, POLL))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> ReloadingSslContext.load(DESCRIPTION, files, never, Duration.ZERO))
        .isInstanceOf(IllegalArgumentException.class);
    assertThatThrownBy(() -> ReloadingSslContext.load(" ", files, never, POLL))
        .isInstanceOf(IllegalArgumentException.class);
  }

  private ReloadingSslContext load() {
    return ReloadingSslContext.load(
        DESCRIPTION,
        List.of(certFile, keyFile),
        () -> {
          builds.incrementAndGet();
          return SslContextBuilder.forServer(certFile.toFile(), keyFile.toFile()).build();
        },
        POLL);
  }

  private void writeFlat(Identity id) throws IOException {
    certFile = dir.resolve("tls.crt");
    keyFile = dir.resolve("tls.key");
    Files.writeString(certFile, id.certPem);
    Files.writeString(keyFile, id.keyPem);
  }

  private Path writeSecretDir(String name, Identity id) throws IOException {
    Path d = Files.createDirectory(dir.resolve(name));
    Files.writeString(d.resolve("tls.crt"), id.certPem);
    Files.writeString(d.resolve("tls.key"), id.keyPem);
    return d;
  }

  /** Points {@code ..data} at {@code target} in one rename, as the kubelet does. */
  private void swapData(Path target) throws IOException {
    Path tmp = Files.createSymbolicLink(dir.resolve("..data_tmp"), target.getFileName());
    Files.move(tmp, dir.resolve("..data"), StandardCopyOption.ATOMIC_MOVE);
  }

  private void startServer() throws InterruptedException {
    group = Transport.newGroup(1, new DefaultThreadFactory("reload-test"));
    server =
        new ServerBootstrap()
            .group(group)
            .channel(Transport.serverChannel())
            .childHandler(
                new ChannelInitializer<Channel>() {
                  @Override
                  protected void initChannel(Channel ch) {
                    ch.pipeline().addLast(reloading.newHandler(ch.alloc()), Echo.INSTANCE);
                  }
                })
            .bind("127.0.0.1", 0)
            .sync()
            .channel();
  }

  /** A handshaken client; a fresh client context each time, so no session is resumed. */
  private SSLSocket connect() throws Exception {
    KeyStore trusted = KeyStore.getInstance(KeyStore.getDefaultType());
    trusted.load(null, null);
    trusted.setCertificateEntry("one", one.cert);
    trusted.setCertificateEntry("two", two.cert);
    trusted.setCertificateEntry("three", three.cert);
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trusted);
    SSLContext tls = SSLContext.getInstance("TLS");
    tls.init(null, tmf.getTrustManagers(), null);
    int port = ((InetSocketAddress) server.localAddress()).getPort();
    SSLSocket s = (SSLSocket) tls.getSocketFactory().createSocket("127.0.0.1", port);
    clients.add(s);
    s.setSoTimeout((int) AT_MOST.toMillis());
    s.startHandshake();
    return s;
  }

  private static X509Certificate peer(SSLSocket s) throws IOException {
    return (X509Certificate) s.getSession().getPeerCertificates()[0];
  }

  private static String echo(SSLSocket s, String text) throws IOException {
    byte[] out = text.getBytes(UTF_8);
    s.getOutputStream().write(out);
    s.getOutputStream().flush();
    return new String(s.getInputStream().readNBytes(out.length), UTF_8);
  }

  /** Writes back what it reads; the write releases the buffer. */
  @ChannelHandler.Sharable
  private static final class Echo extends ChannelInboundHandlerAdapter {
    static final Echo INSTANCE = new Echo();

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      ctx.writeAndFlush(msg);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      ctx.close();
    }
  }

  /** A self-signed EC certificate and its key, as PEM text. */
  private record Identity(X509Certificate cert, String certPem, String keyPem) {
    @SuppressWarnings("deprecation") // netty-pkitesting is not a test dependency of proto
    static Identity selfSigned(String fqdn) throws Exception {
      io.netty.handler.ssl.util.SelfSignedCertificate ssc =
          new io.netty.handler.ssl.util.SelfSignedCertificate(fqdn, "EC", 256);
      try {
        PrivateKey key = ssc.key();
        return new Identity(
            ssc.cert(),
            pem("CERTIFICATE", ssc.cert().getEncoded()),
            pem("PRIVATE KEY", key.getEncoded()));
      } finally {
        ssc.delete();
      }
    }

    private static String pem(String type, byte[] der) {
      return "-----BEGIN "
          + type
          + "-----\n"
          + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der)
          + "\n-----END "
          + type
          + "-----\n";
    }
  }
}
