package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.routing.EgressMode;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The apiserver's other transport: CONNECT over a Unix socket, created with mode 0600, or 0660 for
 * the group given with --uds-group.
 */
class UnixSocketConnectTest {

  @Test
  void connectOverTheUnixSocketReachesTheTarget(@TempDir Path dir) throws Exception {
    assumeTrue(Transport.supportsDomainHalfClosure());
    Path sock = dir.resolve("connect.sock");
    ServerConfig base =
        ServerConfig.plain(EgressMode.DISABLED, null, new InetSocketAddress("127.0.0.1", 0));
    ServerConfig config = base.withUds(sock);
    try (TunnelServer server = new TunnelServer(config).start();
        TestTarget echo = new TestTarget("127.0.0.1", 0, TestTarget::echo);
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sock)))
          .isEqualTo("rw-------");
      ch.connect(UnixDomainSocketAddress.of(sock));
      ch.write(ByteBuffer.wrap(ConnectClient.apiserverRequest("127.0.0.1:" + echo.port())));
      ByteBuffer head = ByteBuffer.allocate(39); // "HTTP/1.1 200 Connection established\r\n\r\n"
      while (head.hasRemaining() && ch.read(head) >= 0) {
        // read exactly the response head
      }
      assertThat(new String(head.array(), StandardCharsets.US_ASCII))
          .isEqualTo("HTTP/1.1 200 Connection established\r\n\r\n");
      ch.write(ByteBuffer.wrap("hello".getBytes(StandardCharsets.US_ASCII)));
      ByteBuffer reply = ByteBuffer.allocate(5);
      while (reply.hasRemaining() && ch.read(reply) >= 0) {
        // the echo
      }
      assertThat(new String(reply.array(), StandardCharsets.US_ASCII)).isEqualTo("hello");
    }
  }

  @Test
  void aGroupCanBeGivenAccessToTheSocket(@TempDir Path dir) throws Exception {
    assumeTrue(Transport.supportsDomainHalfClosure());
    Path sock = dir.resolve("connect.sock");
    // The group of a file we create is one we may hand the socket to.
    String group =
        Files.readAttributes(Files.createFile(dir.resolve("probe")), PosixFileAttributes.class)
            .group()
            .getName();
    ServerConfig base =
        ServerConfig.plain(EgressMode.DISABLED, null, new InetSocketAddress("127.0.0.1", 0));
    ServerConfig config = base.withUds(sock).withSecurity(base.security().withUdsGroup(group));
    try (TunnelServer server = new TunnelServer(config).start()) {
      PosixFileAttributes attrs = Files.readAttributes(sock, PosixFileAttributes.class);
      assertThat(PosixFilePermissions.toString(attrs.permissions())).isEqualTo("rw-rw----");
      assertThat(attrs.group().getName()).isEqualTo(group);
    }
    ServerConfig unknown =
        base.withUds(dir.resolve("other.sock"))
            .withSecurity(base.security().withUdsGroup("no-such-group-xyz"));
    assertThatThrownBy(() -> new TunnelServer(unknown).start())
        .isInstanceOf(java.io.IOException.class)
        .hasMessageContaining("--uds-group no-such-group-xyz: no such group");
  }

  @Test
  void aTransportWhoseUnixSocketsCannotHalfCloseIsRefusedWithTheReason(@TempDir Path dir) {
    assumeFalse(Transport.supportsDomainHalfClosure());
    ServerConfig config =
        ServerConfig.plain(EgressMode.DISABLED, null, new InetSocketAddress("127.0.0.1", 0))
            .withUds(dir.resolve("connect.sock"));
    assertThatThrownBy(() -> new TunnelServer(config).start())
        .isInstanceOf(java.io.IOException.class)
        .hasMessageStartingWith("--uds needs the epoll transport (Linux)")
        .hasMessageContaining("cannot half-close");
  }
}
