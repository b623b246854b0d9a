package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class AddressesTest {
  @Test
  void addressesPrintAsOperatorsWriteThemWithoutTheSlash() throws Exception {
    InetSocketAddress v4 = new InetSocketAddress(InetAddress.getByName("10.0.0.5"), 8091);
    InetSocketAddress v6 = new InetSocketAddress(InetAddress.getByName("fd00::5"), 8091);
    assertThat(v4.toString()).isEqualTo("/10.0.0.5:8091"); // what the JDK prints
    assertThat(Addresses.text(v4)).isEqualTo("10.0.0.5:8091");
    assertThat(Addresses.text(v6)).isEqualTo("[fd00:0:0:0:0:0:0:5]:8091");
    assertThat(Addresses.text((java.net.SocketAddress) null)).isEqualTo("-");
    assertThat(Addresses.text(java.net.UnixDomainSocketAddress.of(Path.of("/run/x.sock"))))
        .isEqualTo("/run/x.sock");
    assertThat(Addresses.text(List.of(InetAddress.getByName("10.0.0.5"), v6.getAddress())))
        .isEqualTo("[10.0.0.5, fd00:0:0:0:0:0:0:5]");
  }

  @Test
  void aHostNameIsKeptForDisplayButNotForTellingPeersApart() throws Exception {
    InetSocketAddress named =
        new InetSocketAddress(InetAddress.getByAddress("localhost", new byte[] {127, 0, 0, 1}), 1);
    assertThat(Addresses.text(named)).isEqualTo("localhost:1");
    assertThat(Addresses.ip(named)).isEqualTo("127.0.0.1:1");
    assertThat(Addresses.ip(InetSocketAddress.createUnresolved("node-a", 2))).isEqualTo("node-a:2");
  }
}
