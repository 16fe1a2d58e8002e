package io.github.kpf.lag;

import java.time.Duration;
import java.util.Collection;
import java.util.Map;

/** Where {@link PartitionLag} learns the latest offset of each Kafka partition. */
public interface EndOffsets extends AutoCloseable {

    /**
     * The offset the next record produced to each partition will get (Kafka's "latest" offset; under {@code
     * read_committed}, the last stable offset). Partitions Kafka does not answer for are left out.
     */
    Map<TopicPartitionKey, Long> latest(Collection<TopicPartitionKey> partitions, Duration timeout) throws Exception;

    @Override
    void close();
}
