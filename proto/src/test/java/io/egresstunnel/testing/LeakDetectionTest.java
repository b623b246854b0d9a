package io.egresstunnel.testing;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Proves that the test JVMs really catch leaks: a buffer dropped without release is reported. */
class LeakDetectionTest {

  @Test
  void theFailingDetectorIsInstalledAndReportsADeliberateLeak() {
    leakOneBuffer();
    List<String> reports = LeakCheck.collectUntil(r -> !r.isEmpty(), 10_000);
    assertThat(FailingLeakDetector.isInstalled()).isTrue();
    assertThat(reports).isNotEmpty();
    assertThat(reports.get(0)).contains("LEAK").contains("leakOneBuffer");
    // The reports were drained here, so LeakCheckExtension does not fail this test.
  }

  @Test
  void aReleasedBufferIsNotReported() {
    ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(64);
    buf.writeLong(1);
    buf.release();
    assertThat(LeakCheck.collect(3)).isEmpty();
  }

  private static void leakOneBuffer() {
    ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(64);
    buf.writeInt(0xDEAD); // recorded access: the report's trace names this method
  }
}
