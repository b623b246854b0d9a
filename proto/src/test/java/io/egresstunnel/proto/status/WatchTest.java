package io.egresstunnel.proto.status;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The refreshing view of {@code --watch}, and how status output writes addresses. */
class WatchTest {
  @Test
  void onATerminalEachFrameRedrawsTheScreenInPlace() throws Exception {
    StringWriter out = new StringWriter();
    List<Long> elapsed = new ArrayList<>();
    Watch.run(
        new PrintWriter(out),
        true,
        Duration.ofMillis(1),
        3,
        e -> {
          elapsed.add(e);
          return "frame " + elapsed.size() + "\n";
        });
    assertThat(out.toString())
        .isEqualTo(
            Watch.HOME_AND_CLEAR
                + "frame 1\n"
                + Watch.HOME_AND_CLEAR
                + "frame 2\n"
                + Watch.HOME_AND_CLEAR
                + "frame 3\n");
    assertThat(elapsed.get(0)).isZero();
    assertThat(elapsed.subList(1, 3)).allMatch(e -> e >= Duration.ofMillis(1).toNanos());
  }

  @Test
  void elsewhereFramesFollowEachOtherWithABlankLineBetween() throws Exception {
    StringWriter out = new StringWriter();
    int[] n = {0};
    Watch.run(new PrintWriter(out), false, Duration.ofMillis(1), 2, e -> "frame " + ++n[0] + "\n");
    assertThat(out.toString()).isEqualTo("frame 1\n\nframe 2\n");
  }

  @Test
  void addressesPrintWithoutTheSlashOfInetAddress() throws Exception {
    assertThat(
            io.egresstunnel.proto.net.Addresses.text(
                new InetSocketAddress(InetAddress.getByName("10.0.0.12"), 41822)))
        .isEqualTo("10.0.0.12:41822");
    assertThat(
            io.egresstunnel.proto.net.Addresses.text(
                new InetSocketAddress(InetAddress.getByName("::1"), 8091)))
        .isEqualTo("[0:0:0:0:0:0:0:1]:8091");
    assertThat(io.egresstunnel.proto.net.Addresses.text((java.net.SocketAddress) null))
        .isEqualTo("-");
    assertThat(StatusText.address("/10.0.0.12:41822")).isEqualTo("10.0.0.12:41822");
    assertThat(StatusText.address("node-a/10.0.0.12:41822")).isEqualTo("10.0.0.12:41822");
    assertThat(StatusText.address("/run/egress-tunnel/connect.sock"))
        .isEqualTo("/run/egress-tunnel/connect.sock");
  }
}
