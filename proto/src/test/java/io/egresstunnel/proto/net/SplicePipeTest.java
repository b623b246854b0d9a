package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.netty.channel.Channel;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollServerSocketChannel;
import java.io.OutputStream;
import java.net.Socket;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@link SplicePipe}'s size: pipes are as large as asked (within the kernel's limits), and one
 * splice from a socket moves up to that much, not the kernel's default 64 KiB.
 */
class SplicePipeTest {

  @BeforeEach
  void epollOnly() {
    assumeTrue(Epoll.isAvailable(), "pipes are spliced on epoll only");
  }

  @AfterEach
  void restoreDefault() {
    SplicePipe.size(SplicePipe.DEFAULT_SIZE);
  }

  @Test
  void pipesHoldWhatTheyAreAskedTo() throws Exception {
    int before = SplicePipe.openCount();
    for (int size : new int[] {SplicePipe.MIN_SIZE, SplicePipe.DEFAULT_SIZE, SplicePipe.MAX_SIZE}) {
      SplicePipe.size(size);
      SplicePipe pipe = SplicePipe.open();
      try {
        assertThat(pipe.capacity()).as("asked for %d", size).isEqualTo(size);
      } finally {
        pipe.release();
      }
    }
    assertThat(SplicePipe.openCount()).isEqualTo(before);
  }

  @Test
  void sizesOutsideTheKernelsRangeAreRefused() {
    assertThatThrownBy(() -> SplicePipe.size(SplicePipe.MIN_SIZE - 1))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("from 64KiB to 1MiB");
    assertThatThrownBy(() -> SplicePipe.size(SplicePipe.MAX_SIZE + 1))
        .isInstanceOf(IllegalArgumentException.class);
    assertThat(SplicePipe.size()).isEqualTo(SplicePipe.DEFAULT_SIZE);
  }

  /**
   * From a socket that holds more than either, a pipe of the default size takes several times what
   * one of the kernel's default size takes before it is full. (The kernel sizes a pipe in pages,
   * and may put more than a page's bytes in one, so the bytes a full pipe holds vary.)
   */
  @Test
  void aLargerPipeTakesMorePerSplice() throws Exception {
    EventLoopGroup g = new MultiThreadIoEventLoopGroup(1, new EpollInterestFix());
    SplicePipe.size(SplicePipe.KERNEL_DEFAULT_SIZE);
    SplicePipe small = SplicePipe.open();
    SplicePipe.size(SplicePipe.DEFAULT_SIZE);
    SplicePipe large = SplicePipe.open();
    int total = 16 << 20;
    try (Socket peer = new Socket()) {
      Channel ch = StreamSocketTuningTest.accepted(g, EpollServerSocketChannel.class, peer);
      ch.eventLoop().submit(() -> ch.config().setAutoRead(false)).sync(); // the test reads it
      int fd = SplicePipe.fd(ch);
      Thread writer =
          new Thread(
              () -> {
                try {
                  OutputStream out = peer.getOutputStream();
                  out.write(new byte[total]);
                  out.flush();
                } catch (java.io.IOException e) {
                  // the test closed the socket first
                }
              });
      writer.start();
      long smallHeld = fillUntilFull(ch, small, fd, writer);
      long largeHeld = fillUntilFull(ch, large, fd, writer);
      assertThat(largeHeld).isGreaterThan(2 * smallHeld).isLessThan(total);
      ch.close().sync();
      writer.join(10_000);
    } finally {
      small.release();
      large.release();
      g.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
    }
  }

  /**
   * Splices from the socket into the pipe until splices move nothing for a while although the
   * writer is still blocked on bytes the socket has not taken: the pipe is full.
   */
  private static long fillUntilFull(Channel ch, SplicePipe pipe, int fd, Thread writer) {
    Awaitility.await()
        .atMost(Duration.ofSeconds(20))
        .during(Duration.ofMillis(200))
        .pollInterval(Duration.ofMillis(10))
        .until(
            () ->
                ch.eventLoop().submit(() -> pipe.fill(fd, Integer.MAX_VALUE)).get() == 0
                    && pipe.held() > 0
                    && writer.isAlive());
    return pipe.held();
  }
}
