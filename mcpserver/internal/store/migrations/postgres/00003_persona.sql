-- +goose Up
-- How each user's persona answers query_user. A user without a row has the
-- defaults: no self-description, answers others, the operator's model
-- parameters. NULL model parameters mean "the operator's default"; the
-- application clamps stored values to the operator's limits when it reads
-- them, so lowering a limit takes effect without rewriting rows.
CREATE TABLE persona_settings (
    user_id        uuid PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    description    text NOT NULL DEFAULT '',
    answers_others boolean NOT NULL DEFAULT true,
    temperature    double precision,
    max_tokens     integer,
    updated_at     timestamptz NOT NULL
);

-- +goose Down
DROP TABLE persona_settings;
