package io.egresstunnel.proto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.egresstunnel.proto.config.Units;
import java.time.Duration;
import org.junit.jupiter.api.Test;

class UnitsTest {

  @Test
  void durations() {
    assertThat(Units.parseDuration("500ms")).isEqualTo(Duration.ofMillis(500));
    assertThat(Units.parseDuration("10s")).isEqualTo(Duration.ofSeconds(10));
    assertThat(Units.parseDuration("1.5s")).isEqualTo(Duration.ofMillis(1500));
    assertThat(Units.parseDuration("2m")).isEqualTo(Duration.ofMinutes(2));
    assertThat(Units.parseDuration("365d")).isEqualTo(Duration.ofDays(365));
    assertThat(Units.parseDuration("1h")).isEqualTo(Duration.ofHours(1));
    assertThatThrownBy(() -> Units.parseDuration("10")).hasMessageContaining("e.g. 500ms");
    assertThatThrownBy(() -> Units.parsePositiveDuration("--x", "0s"))
        .hasMessage("--x must be positive, got 0s");
  }

  @Test
  void sizes() {
    assertThat(Units.parseSize("65536")).isEqualTo(65536);
    assertThat(Units.parseSize("64Ki")).isEqualTo(65536);
    assertThat(Units.parseSize("256KiB")).isEqualTo(262144);
    assertThat(Units.parseSize("1Mi")).isEqualTo(1 << 20);
    assertThatThrownBy(() -> Units.parseSize("4Gi")).hasMessageContaining("not a size");
    assertThatThrownBy(() -> Units.parseSize("-1")).hasMessageContaining("not a size");
  }

  @Test
  void hostPorts() {
    assertThat(Units.parseHostPort("127.0.0.1:8090").getPort()).isEqualTo(8090);
    assertThat(Units.parseHostPort("[::1]:8090").getAddress().getHostAddress())
        .isEqualTo("0:0:0:0:0:0:0:1");
    assertThat(Units.parseHostPort(":8091").getAddress().isAnyLocalAddress()).isTrue();
    assertThatThrownBy(() -> Units.parseHostPort("8090")).hasMessageContaining("HOST:PORT");
    assertThatThrownBy(() -> Units.parseHostPort("h:99999")).hasMessageContaining("0..65535");
  }
}
